"""Start the mock OpenAI-compatible provider as a real subprocess and drive its admin API.

    with MockProvider("openai") as mock:
        mock.set_faults({"fault": "429", "times": 1, "retry_after": 1})
        client = openai.OpenAI(base_url=mock.url, api_key="k", max_retries=0)

Only the standard library is used here, so any test tier can import it.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

READY = re.compile(r"^mock-provider (\S+) listening on (http://\S+):(\d+)$")


class MockProvider:
    """A `python -m switchboard.mockprovider` process on a free loopback port."""

    def __init__(
        self,
        name: str = "mock",
        *,
        api_key: str | None = None,
        latency_ms: float = 0,
        chunk_delay_ms: float = 0,
        startup_timeout: float = 15.0,
    ) -> None:
        self.name = name
        args = ["--port", "0", "--host", "127.0.0.1", "--name", name]
        args += ["--latency-ms", str(latency_ms), "--chunk-delay-ms", str(chunk_delay_ms)]
        if api_key is not None:
            args += ["--api-key", api_key]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "switchboard.mockprovider", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self.base, self.port = self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The OpenAI base URL, ending in /v1."""
        return f"{self.base}/v1"

    def _wait_ready(self, timeout: float) -> tuple[str, int]:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.05)
            if ready:
                line = self._proc.stdout.readline().decode().strip()
                if match := READY.match(line):
                    port = int(match.group(3))
                    return f"{match.group(2)}:{port}", port
                if not line and self._proc.poll() is not None:
                    break
        raise RuntimeError(f"mock provider {self.name} did not start: {self._stderr_text()}")

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def set_faults(self, *rules: Mapping[str, object]) -> list[dict[str, Any]]:
        """Replace the fault rules; each is {"fault", "times"?, "model"?, "retry_after"?,
        "delay_ms"?, "after_chunks"?}. Returns the rules as the mock understood them."""
        result: list[dict[str, Any]] = self._call("POST", "/_mock/faults", {"rules": rules})[
            "rules"
        ]
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_mock/stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_mock/requests")
        return result

    def reset(self) -> None:
        self._call("POST", "/_mock/reset", {})

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
