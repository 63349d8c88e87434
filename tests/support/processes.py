"""Real server processes for tests: start, wait until ready, stop. Stdlib only.

`ServerProcess` is a child that says it is ready with a line on stdout (the sidecar, the mock
provider); `wait_until` and `stop_process` serve children that are ready otherwise (redis).
"""

from __future__ import annotations

import os
import re
import select
import signal as signals
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    timeout: float,
    interval: float = 0.02,
) -> bool:
    """Poll `ready` until it holds (True), or `proc` exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(interval)
    return False


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signals.SIGTERM, timeout: float = 10.0
) -> None:
    """Send `sig` to a running `proc` and reap it; SIGKILL when it outlives `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServerProcess:
    """A child process that prints a ready line matching `ready` (with a `port` group)."""

    def __init__(
        self,
        argv: Sequence[str],
        ready: re.Pattern[str],
        *,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.argv = list(argv)
        self.output = tempfile.NamedTemporaryFile(prefix="proc-", suffix=".log")  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self.output,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.port = 0
        try:
            self.port = self._wait_ready(ready, startup_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_ready(self, ready: re.Pattern[str], timeout: float) -> int:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._proc.stdout], [], [], 0.05)
            if readable:
                line = self._proc.stdout.readline().decode(errors="replace").strip()
                if match := ready.search(line):
                    return int(match.group("port"))
                if not line and self._proc.poll() is not None:
                    break
        raise RuntimeError(f"{self.argv[:3]} did not start:\n{self.log()}")

    def log(self) -> str:
        """What the process wrote to stderr so far."""
        with open(self.output.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self) -> bool:
        return self._proc.poll() is None

    def signal(self, sig: int) -> None:
        self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self._proc.wait(timeout=timeout)

    def stop(self, sig: int = signals.SIGTERM) -> None:
        stop_process(self._proc, sig)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
