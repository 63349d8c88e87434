"""A real `redis-server` on a free loopback port, for tests: start, stop, restart on that port.

No persistence (`--save ''`, no AOF): a restart after `stop()` comes back empty, like a Redis
that lost its data; tests that need data across an outage keep the server up or re-check it.
Stdlib and redis-py only.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from switchboard.ledger.base import SpendRecord
from switchboard.ledger.redis import RedisLedger
from switchboard.pricing.cost import Usage
from tests.support.processes import stop_process, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """`redis-server` as a child process; `.url` stays the same across `stop()` / `start()`."""

    def __init__(self, *, port: int | None = None, startup_timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/install-deps installs it)")
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.startup_timeout = startup_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="redis-")
        self._log = Path(self._dir.name) / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            return
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--dir", self._dir.name]
        argv += ["--logfile", str(self._log)]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if wait_until(self.ping, self._proc, self.startup_timeout):
            return
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log()}")

    def ping(self) -> bool:
        """Whether the server answers now."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        """A synchronous client (str responses) for checks made by tests."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=2.0
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); the port is kept for `start()`."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout=5)

    def log(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def record_spend(
    url: str, namespace: str, cost: str, directory: Path, provider: str = "local"
) -> None:
    """Spend of feature `checkout` written to the Redis ledger as a sidecar would."""

    async def write() -> None:
        ledger = RedisLedger(url, directory / f"outbox-{uuid.uuid4().hex[:6]}.jsonl")
        try:
            await ledger.record(
                SpendRecord(
                    id=uuid.uuid4().hex,
                    at=datetime.now(UTC),
                    namespace=namespace,
                    feature="checkout",
                    team="payments",
                    provider=provider,
                    model="m",
                    route="main",
                    usage=Usage(100, 10),
                    cost=Decimal(cost),
                )
            )
        finally:
            await ledger.close()

    asyncio.run(write())
