"""Edge: the in-memory ledger, the default when a sidecar runs alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from switchboard.budget.periods import PERIODS, Window, window_of
from switchboard.ledger.base import SpendRecord, Totals, WindowTotals, breakdown_key
from switchboard.pricing.cost import ZERO, Usage


@dataclass(slots=True)
class _Running:
    """Spend of one slice (or a whole window), added to in place: a record adds to six of
    them, and building a new `Totals` and `Usage` for each showed in a busy sidecar's profile."""

    cost: Decimal = ZERO
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    def add(self, cost: Decimal, usage: Usage) -> None:
        self.cost += cost
        self.requests += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens

    def totals(self) -> Totals:
        usage = Usage(self.input_tokens, self.output_tokens, self.cached_input_tokens)
        return Totals(self.cost, self.requests, usage)


@dataclass(slots=True)
class _Tally:
    """One window's running totals (read back as a `WindowTotals`)."""

    total: _Running = field(default_factory=_Running)
    by_model: dict[str, _Running] = field(default_factory=dict)


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
            tally.total.add(cost, usage)
            running = tally.by_model.get(slice_key)
            if running is None:
                running = tally.by_model[slice_key] = _Running()
            running.add(cost, usage)

    async def totals(self, namespace: str, feature: str, window: Window) -> WindowTotals:
        tally = self._windows.get((namespace, feature, window.label))
        if tally is None:
            return WindowTotals()
        return WindowTotals(
            tally.total.totals(), {k: v.totals() for k, v in tally.by_model.items()}
        )

    async def close(self) -> None:
        return None
