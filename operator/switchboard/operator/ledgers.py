"""Edge: reading FeatureBudget spend from the Redis ledgers the sidecars write.

One `RedisLedger` per URL, opened on first use and closed at shutdown. The operator only reads
(`totals`): it never records, so the outbox file each ledger needs stays empty.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from switchboard.budget.periods import window_of
from switchboard.ledger.redis import LedgerUnavailable, RedisLedger
from switchboard.operator.budgets import NO_LEDGER, LedgerReading, ParsedBudget


def without_credentials(url: str) -> str:
    """A Redis URL fit for status and logs: no user, no password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # not a number: shown without it
        port = None
    return urlunsplit(parts._replace(netloc=f"{host}:{port}" if port else host))


class Ledgers:
    """The Redis ledgers budgets are read from."""

    def __init__(self) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="switchboard-operator-")
        self._ledgers: dict[str, RedisLedger] = {}

    def _ledger(self, url: str) -> RedisLedger:
        if url not in self._ledgers:
            outbox = Path(self._scratch.name) / f"outbox-{len(self._ledgers)}.jsonl"
            self._ledgers[url] = RedisLedger(url, outbox)
        return self._ledgers[url]

    async def reading(self, url: str | None, parsed: ParsedBudget, now: datetime) -> LedgerReading:
        """What the budget's feature spent in its window holding `now`, or why it is unknown."""
        if parsed.budget is None:
            return LedgerReading(None, "Invalid", "")
        if url is None:
            return NO_LEDGER
        spec = parsed.budget.spec
        where = without_credentials(url)
        try:
            ledger = self._ledger(url)
        except ValueError as exc:  # redis-py refuses the URL
            return LedgerReading(None, "LedgerUnreachable", f"unusable Redis URL {where}: {exc}")
        try:
            totals = await ledger.totals(
                parsed.namespace, spec.feature, window_of(spec.period, now)
            )
        except LedgerUnavailable as exc:
            return LedgerReading(None, "LedgerUnreachable", f"{where}: {exc}")
        return LedgerReading(
            totals, "LedgerRead", f"{totals.total.requests} request(s) this period in {where}"
        )

    async def close(self) -> None:
        for ledger in self._ledgers.values():
            await ledger.close()
        self._ledgers.clear()
        self._scratch.cleanup()
