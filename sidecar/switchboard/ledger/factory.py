"""Edge: the ledger a policy asks for — Redis when it names one, else in this process."""

from __future__ import annotations

from pathlib import Path

from switchboard.ledger.base import SpendLedger
from switchboard.ledger.memory import MemoryLedger
from switchboard.ledger.redis import RedisLedger


def open_ledger(redis_url: str | None, outbox: Path) -> SpendLedger:
    """A `RedisLedger` on `redis_url` with its outbox at `outbox`, or a `MemoryLedger`.

    Nothing is connected yet: the Redis ledger connects on first use and starts its outbox
    replay then (or at `start()`); `close()` it on shutdown to replay what is pending.
    """
    if redis_url is None:
        return MemoryLedger()
    return RedisLedger(redis_url, outbox)
