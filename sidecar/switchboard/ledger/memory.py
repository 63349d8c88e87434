"""Edge: the in-memory ledger, the default when a sidecar runs alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from switchboard.budget.periods import PERIODS, Window, window_of
from switchboard.ledger.base import SpendRecord, Totals, WindowTotals, breakdown_key


@dataclass(slots=True)
class _Tally:
    """One window's running totals, updated in place (read back as a `WindowTotals`)."""

    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)


class MemoryLedger:
    """Spend per (namespace, feature, window), kept in this process.

    Records reach it straight from the pipeline, once each, so it keeps no ids: replays (and
    de-duplication) exist only where a store can be unreachable, in the Redis ledger.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str, str], _Tally] = {}
        self._labels: dict[date, tuple[str, ...]] = {}

    async def start(self) -> None:
        return None

    def _window_labels(self, at: datetime) -> tuple[str, ...]:
        """The labels of the daily, weekly and monthly windows of `at`, computed once a day."""
        if at.tzinfo is not UTC:
            return tuple(window_of(period, at).label for period in PERIODS)
        day = at.date()
        labels = self._labels.get(day)
        if labels is None:
            labels = tuple(window_of(period, at).label for period in PERIODS)
            self._labels = {day: labels}  # only today's stays
        return labels

    async def record(self, record: SpendRecord) -> None:
        slice_key = breakdown_key(record)
        cost, usage = record.cost, record.usage
        for label in self._window_labels(record.at):
            key = (record.namespace, record.feature, label)
            tally = self._windows.get(key)
            if tally is None:
                tally = self._windows[key] = _Tally()
            tally.total = tally.total.plus(cost, usage)
            by_model = tally.by_model
            by_model[slice_key] = by_model.get(slice_key, Totals()).plus(cost, usage)

    async def totals(self, namespace: str, feature: str, window: Window) -> WindowTotals:
        tally = self._windows.get((namespace, feature, window.label))
        if tally is None:
            return WindowTotals()
        return WindowTotals(tally.total, dict(tally.by_model))

    async def close(self) -> None:
        return None
