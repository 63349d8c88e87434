"""Edge: the Redis spend ledger, shared by every sidecar of a cluster.

Owns the Redis connection, the one Lua script that applies a batch of records atomically, each
exactly once, and the task that moves records from the outbox into Redis. What the keys hold and
how cost stays exact: `ledger/layout.py`; how the outbox survives crashes: `ledger/outbox.py`.

`record()` never waits for Redis: it appends the record to the outbox (one write, the record is
then in the kernel and survives the sidecar being killed) and wakes the applier, so a request is
answered without a round trip to Redis. The applier takes everything recorded since its last
batch (renaming the outbox file, `Outbox.rotate`) and applies it in one round trip, one script
call per namespace, so that under load many records share a round trip; the records of a batch
are kept in memory beside their file, so that it is read back only after a crash or an outage,
and each is packed into its script arguments at the loop's turn after `record()` (after the
answer), so that building a batch only joins bytes.
Redis sees a record about 20 ms after the answer (`APPLY_LINGER_SECONDS`, so that the records of
the same moment share a batch), or a round trip later under load.

When Redis is unreachable or fails, the batch stays in the outbox, which is fsync'd, and until a
replay finds Redis again the applier only fsyncs what arrives, so an outage costs one failed
round trip (up to a second if Redis hangs), not one per record. The replay task runs at once on
`start()` (files left by a crash go first) and then every `replay_interval` seconds; `close()`
(the SIGTERM path) applies what is pending once more before it returns. `flush()` applies what
was recorded so far and returns when Redis has it (or the outbox, if Redis failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from switchboard.budget.periods import Window
from switchboard.ledger.base import SpendRecord, WindowTotals
from switchboard.ledger.layout import (
    APPLY_SCRIPT,
    MAX_RECORDS_PER_CALL,
    PackedRecord,
    apply_commands,
    packed_record,
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
REPLAY_BATCH = MAX_RECORDS_PER_CALL
APPLY_LINGER_SECONDS = 0.02
"""How long the applier waits after a record arrives before it takes a batch: the records of
that moment share one round trip (and one rename of the outbox file) instead of each paying
for its own, and the answers never wait for it. A batch costs the event loop ~100 µs of file
calls and the round trip whatever its size, plus 1-3 µs a record (its commands are joined
from bytes `_pack` built after each answer), and Redis ~110 µs per script call of up to
`APPLY_SLICE` records; a request whose answer arrives meanwhile waits. At concurrency 1, 20 ms
gave a lower p99 than 10 ms (more batches) and 50 ms (longer ones) (bench/README.md, eighth
pass). Other sidecars and the operator see the spend 20 ms later, which budget leases make
harmless."""
APPLY_SLICE = 16
"""Records per script call, and per turn of the event loop when the batch is built."""
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
        self._apply_sha = self._redis.register_script(APPLY_SCRIPT).sha
        self._outbox = Outbox(outbox)
        self._prefix = key_prefix
        self._replay_interval = replay_interval
        self._down = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        # Kept once the tasks start: asking asyncio for it is a system call on Python 3.11,
        # and `record` schedules on it for every record.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # The records of the outbox file, in order, while they are all known here: a batch is
        # then applied from memory. An outbox left by an earlier process, or one that grew
        # while Redis was down, is read back from its file instead.
        self._batch: list[SpendRecord | PackedRecord] = []
        self._batch_complete = not self._outbox.holds_lines()
        self._windows: tuple[date | None, tuple[Window, ...]] = (None, ())

    async def start(self) -> None:
        """Start the replay and apply tasks (once; the first `record` starts them too)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if not self._tasks and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._tasks = [
                asyncio.create_task(self._replay_forever(), name="ledger-replay"),
                asyncio.create_task(self._apply_forever(), name="ledger-apply"),
            ]

    def _windows_of(self, at: datetime) -> tuple[Window, ...]:
        """`record_windows(at)`, computed once per UTC day."""
        if at.tzinfo is not UTC:
            return record_windows(at)
        day = at.date()
        if self._windows[0] != day:
            self._windows = (day, record_windows(at))
        return self._windows[1]

    async def record(self, record: SpendRecord) -> None:
        """Put `record` in the outbox (it is then safe) and let the applier take it to Redis."""
        self._ensure_started()
        try:
            self._outbox.append(record_line(record))
        except OSError as exc:
            # The outbox cannot be written (a full or read-only disk): take the record to
            # Redis before the answer instead, as the only copy must not be lost.
            log.error("ledger outbox %s cannot be written (%s)", self._outbox.path, exc)
            await self._apply_all([record])
            return
        if self._batch_complete:  # (never while Redis is down: `_went_down` ends the mirror)
            self._batch.append(record)
            # Packed for Redis at the loop's next turn, after the answer this record is part
            # of: the batch then only joins bytes (1-3 µs a record instead of ~10).
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._pack, self._batch, len(self._batch) - 1)
        self._wake.set()

    def _pack(self, batch: list[SpendRecord | PackedRecord], index: int) -> None:
        # (`batch` is never shortened: a batch taken, or dropped when Redis goes down, is
        # replaced by a new list, so the record is still at `index`.)
        batch[index] = self._packed(batch[index])

    def _packed(self, record: SpendRecord | PackedRecord) -> PackedRecord:
        if isinstance(record, PackedRecord):
            return record
        return packed_record(self._prefix, record, self._windows_of)

    async def flush(self) -> None:
        """Apply what was recorded so far; return when Redis has it, or the outbox has it on
        disk because Redis failed."""
        await self._apply_pending()

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
        async with self._lock:
            try:
                if self._down:
                    await self._redis.ping()
                    self._down = False
                    log.info("Redis ledger reachable again; replaying the outbox")
                return await self._drain()
            except REDIS_TROUBLE as exc:
                await self._went_down(exc)
                return 0

    async def _apply_pending(self) -> None:
        async with self._lock:
            if self._down:
                await self._outbox.sync()
                return
            try:
                await self._drain()
            except REDIS_TROUBLE as exc:
                await self._went_down(exc)

    async def close(self) -> None:
        """Stop the tasks, apply what is pending once more if Redis answers, and disconnect."""
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        # A cancellation that lands inside redis-py can be swallowed there: the loops also end
        # on `_closed`, after the call in flight.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.replay()
        except TimeoutError:
            log.warning("Redis ledger: the last replay did not finish in time")
        if self._outbox.pending():
            await self._outbox.sync()
            log.warning("Redis ledger closed with records left in %s", self._outbox.path)
        self._outbox.close()
        await self._redis.aclose()

    async def _replay_forever(self) -> None:
        while not self._closed:
            await self.replay()
            await asyncio.sleep(self._replay_interval)

    async def _apply_forever(self) -> None:
        while not self._closed:
            await self._wake.wait()
            await asyncio.sleep(APPLY_LINGER_SECONDS)  # let nearby requests' records join in
            self._wake.clear()
            await self._apply_pending()

    async def _drain(self) -> int:
        """Apply the outbox: a `.replaying` file left waiting first, then what was recorded
        since the last batch (from memory when every record of it is known here)."""
        applied = 0
        while True:
            if self._outbox.replaying.exists():
                applied += await self._apply_file(self._outbox.replaying)
            else:
                batch, known = self._batch, self._batch_complete
                if not self._outbox.rotate():
                    return applied
                self._batch, self._batch_complete = [], True
                if known:
                    for start in range(0, len(batch), REPLAY_BATCH):
                        applied += await self._apply_all(batch[start : start + REPLAY_BATCH])
                else:
                    applied += await self._apply_file(self._outbox.replaying)
            self._outbox.release()

    async def _apply_file(self, path: Path) -> int:
        applied = 0
        for lines in lines_of(path, REPLAY_BATCH):
            applied += await self._apply_all(self._readable(lines))
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

    async def _apply_all(self, records: Sequence[SpendRecord | PackedRecord]) -> int:
        """Apply records in one round trip; how many were new (the others were applied before)."""
        if not records:
            return 0
        commands = await self._commands(records)
        try:
            applied = await self._evalsha_all(commands)
        except NoScriptError:  # Redis restarted or was flushed: load the script, once
            await self._redis.script_load(APPLY_SCRIPT)
            applied = await self._evalsha_all(commands)  # (records applied before count once)
        return sum(applied)

    async def _commands(self, records: Sequence[SpendRecord | PackedRecord]) -> list[bytes]:
        """The EVALSHA commands that apply `records`, one script call per `APPLY_SLICE`
        records, with a turn of the loop between slices: requests that arrive meanwhile wait
        for one slice at most, not for the whole batch (a record that `record` did not pack
        yet, or one read back from a file, is packed here)."""
        commands: list[bytes] = []
        for start in range(0, len(records), APPLY_SLICE):
            if start:
                await asyncio.sleep(0)
            packed = [self._packed(r) for r in records[start : start + APPLY_SLICE]]
            commands += apply_commands(self._apply_sha, packed)
        return commands

    async def _evalsha_all(self, commands: Sequence[bytes]) -> list[int]:
        """One round trip: the packed commands written at once on one pooled connection.
        (redis-py's pipeline packed the arguments of a busy batch one by one, most of the
        applier's CPU; its Script objects would also ask Redis whether the script exists
        first, a second round trip on every batch.)"""
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(b"".join(commands))
            replies = [await connection.read_response() for _ in commands]
        except BaseException:
            # Replies may be left unread on it (an error reply raises at once): never reuse it.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        return [int(reply) for reply in replies]

    async def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning(
                "Redis ledger unreachable (%s: %s); records wait in %s until it answers",
                type(exc).__name__,
                exc,
                self._outbox.path,
            )
        self._down = True
        self._batch_complete = False
        self._batch = []
        await self._outbox.sync()
