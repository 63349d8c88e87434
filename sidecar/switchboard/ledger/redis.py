"""Edge: the Redis spend ledger, shared by every sidecar of a cluster.

Owns the Redis connection, the one Lua script that applies a record atomically and exactly once,
and the task that replays the outbox. What the keys hold and how cost stays exact:
`ledger/layout.py`; how the outbox survives crashes: `ledger/outbox.py`.

When Redis is unreachable or fails, `record()` puts the record in the outbox (fsync'd) and
returns; until a replay finds Redis again, further records go straight to the outbox, so an
outage costs one failed attempt (up to a second if Redis hangs), not one per record. The
replay task runs at once on `start()` (a `.replaying` file left by a crash goes first) and then
every `replay_interval` seconds; `close()` (the SIGTERM path) replays once more before it
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from switchboard.budget.periods import Window
from switchboard.ledger.base import SpendRecord, WindowTotals
from switchboard.ledger.layout import (
    APPLY_SCRIPT,
    apply_call,
    record_windows,
    window_key,
    window_totals,
)
from switchboard.ledger.outbox import Outbox, lines_of
from switchboard.ledger.records import record_line, record_of_line

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 0.5
OPERATION_TIMEOUT_SECONDS = 1.0
POOL_SIZE = 32
POOL_WAIT_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 10.0
"""Bound on the replay at shutdown; what it leaves stays in the outbox for the next start."""
REPLAY_BATCH = 500
REDIS_TROUBLE = (RedisError, OSError, TimeoutError)
"""What "Redis is unreachable or failed" looks like: the record goes to the outbox."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LedgerUnavailable(ConnectionError):
    """The Redis ledger cannot be read now."""


class RedisLedger:
    """Spend in Redis, keyed per namespace, feature and window; an outbox file when it is down.

    One outbox file per instance: two ledgers must not share an outbox path.
    """

    def __init__(
        self,
        url: str,
        outbox: Path,
        *,
        replay_interval: float = 1.0,
        key_prefix: str = "switchboard",
    ) -> None:
        # No retries: a failed call costs one timeout at most, then records go to the outbox
        # until the replay task finds Redis again. (A pooled connection that Redis closed is
        # noticed and replaced by the pool before use, so a restart alone does not fail calls.)
        # A bounded pool that waits for a free connection: many concurrent requests share
        # POOL_SIZE connections instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_SECONDS,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=OPERATION_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._apply = self._redis.register_script(APPLY_SCRIPT)
        self._outbox = Outbox(outbox)
        self._prefix = key_prefix
        self._replay_interval = replay_interval
        self._down = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._replay_lock = asyncio.Lock()
        self._windows: tuple[date | None, tuple[Window, ...]] = (None, ())

    async def start(self) -> None:
        """Start the replay task (once; the first `record` starts it too)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._replay_forever(), name="ledger-replay")

    def _windows_of(self, at: datetime) -> tuple[Window, ...]:
        """`record_windows(at)`, computed once per UTC day."""
        if at.tzinfo is not UTC:
            return record_windows(at)
        day = at.date()
        if self._windows[0] != day:
            self._windows = (day, record_windows(at))
        return self._windows[1]

    async def record(self, record: SpendRecord) -> None:
        self._ensure_started()
        if not self._down:
            call = apply_call(self._prefix, record, self._windows_of(record.at))
            try:
                await self._apply(keys=call.keys, args=call.args)
                return
            except REDIS_TROUBLE as exc:
                self._mark_down(exc)
        await self._outbox.append(record_line(record))

    async def totals(self, namespace: str, feature: str, window: Window) -> WindowTotals:
        """The window's totals; `LedgerUnavailable` when Redis cannot be read."""
        key = window_key(self._prefix, namespace, feature, window)
        try:
            fields = await self._redis.hgetall(key)
        except REDIS_TROUBLE as exc:
            raise LedgerUnavailable(f"the Redis ledger cannot be read: {exc}") from exc
        return window_totals({_text(k): _text(v) for k, v in fields.items()})

    async def replay(self) -> int:
        """Apply what the outbox holds, if Redis answers; how many records were new to it."""
        async with self._replay_lock:
            try:
                if self._down:
                    await self._redis.ping()
                    self._down = False
                    log.info("Redis ledger reachable again; replaying the outbox")
                return await self._drain()
            except REDIS_TROUBLE as exc:
                self._mark_down(exc)
                return 0

    async def close(self) -> None:
        """Stop the replay task, replay once more if Redis answers, and disconnect."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.replay()
        except TimeoutError:
            log.warning("Redis ledger: the last replay did not finish in time")
        if self._outbox.pending():
            log.warning("Redis ledger closed with records left in %s", self._outbox.path)
        await self._redis.aclose()

    async def _replay_forever(self) -> None:
        while True:
            await self.replay()
            await asyncio.sleep(self._replay_interval)

    async def _drain(self) -> int:
        applied = 0
        while (path := await self._outbox.claim()) is not None:
            for lines in lines_of(path, REPLAY_BATCH):
                applied += await self._apply_all(self._readable(lines))
            self._outbox.release()
        return applied

    def _readable(self, lines: Sequence[str]) -> list[SpendRecord]:
        records: list[SpendRecord] = []
        rejected: list[str] = []
        for line in lines:
            try:
                records.append(record_of_line(line))
            except ValueError as exc:
                log.error("outbox line rejected (%s), kept in %s", exc, self._outbox.rejected)
                rejected.append(line)
        if rejected:
            self._outbox.reject(rejected)
        return records

    async def _apply_all(self, records: Sequence[SpendRecord]) -> int:
        """Apply records in one round trip; how many were new (the others were applied before)."""
        if not records:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                call = apply_call(self._prefix, record)
                await self._apply(keys=call.keys, args=call.args, client=pipe)
            applied = await pipe.execute()
        return sum(int(result) for result in applied)

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning(
                "Redis ledger unreachable (%s: %s); records go to %s until it answers",
                type(exc).__name__,
                exc,
                self._outbox.path,
            )
        self._down = True
