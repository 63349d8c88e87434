"""Edge: the in-memory ledger, the default when a sidecar runs alone."""

from __future__ import annotations

from switchboard.budget.periods import PERIODS, Window, window_of
from switchboard.ledger.base import SpendRecord, Totals, WindowTotals, breakdown_key


class MemoryLedger:
    """Spend per (namespace, feature, window), kept in this process.

    Records reach it straight from the pipeline, once each, so it keeps no ids: replays (and
    de-duplication) exist only where a store can be unreachable, in the Redis ledger.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str, str], WindowTotals] = {}

    async def start(self) -> None:
        return None

    async def record(self, record: SpendRecord) -> None:
        slice_key = breakdown_key(record)
        for period in PERIODS:
            key = (record.namespace, record.feature, window_of(period, record.at).label)
            old = self._windows.get(key, WindowTotals())
            by_model = dict(old.by_model)
            by_model[slice_key] = by_model.get(slice_key, Totals()).plus(record.cost, record.usage)
            self._windows[key] = WindowTotals(old.total.plus(record.cost, record.usage), by_model)

    async def totals(self, namespace: str, feature: str, window: Window) -> WindowTotals:
        return self._windows.get((namespace, feature, window.label), WindowTotals())

    async def close(self) -> None:
        return None
