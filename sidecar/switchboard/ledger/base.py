"""Pure: what the spend ledger stores and the protocol every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from switchboard.pricing.cost import Usage


@dataclass(frozen=True, slots=True)
class SpendRecord:
    """One paid upstream attempt. `id` makes a second delivery of the same record a no-op."""

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
class SpendTotals:
    cost: Decimal = Decimal(0)
    requests: int = 0
    usage: Usage = field(default_factory=Usage)


class SpendLedger(Protocol):
    """Where spend is recorded and read back."""

    async def record(self, record: SpendRecord) -> None: ...

    async def feature_totals(self, namespace: str, feature: str) -> SpendTotals: ...

    async def close(self) -> None: ...
