"""Pure: what the spend ledger stores and the protocol every backend implements.

Every priced upstream attempt becomes one `SpendRecord`. A backend adds it exactly once (by
`id`) to the daily, weekly and monthly window of `record.at`, per namespace and feature, with a
breakdown per team, provider and model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

from switchboard.budget.periods import Window
from switchboard.pricing.cost import Usage


class SpendRecord(NamedTuple):
    """One paid upstream attempt. `id` makes a second delivery of the same record a no-op.

    A NamedTuple: one is built for every paid attempt before its answer leaves, and a frozen
    dataclass of eleven fields took ~2 µs to build (a tuple, a tenth of that)."""

    id: str
    at: datetime
    namespace: str
    feature: str
    team: str
    provider: str
    model: str
    route: str
    usage: Usage
    cost: Decimal
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Totals:
    """Spend of one slice of a window."""

    cost: Decimal = Decimal(0)
    requests: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Spend of a feature in one window, whole and per `team/provider/model`."""

    total: Totals = field(default_factory=Totals)
    by_model: Mapping[str, Totals] = field(default_factory=dict)


def breakdown_key(record: SpendRecord) -> str:
    """The per-model slice a record belongs to."""
    return f"{record.team}/{record.provider}/{record.model}"


class SpendLedger(Protocol):
    """Where spend is recorded and read back."""

    async def start(self) -> None:
        """Begin background work (outbox replay); called once the event loop runs."""

    async def record(self, record: SpendRecord) -> None:
        """Add `record` once; never raises because the store is unreachable."""

    async def totals(self, namespace: str, feature: str, window: Window) -> WindowTotals:
        """What `feature` spent in `window`, read from the store now."""

    async def close(self) -> None:
        """Deliver what is pending where possible and release connections."""
