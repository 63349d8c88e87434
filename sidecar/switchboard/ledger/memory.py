"""Edge: the in-memory ledger, the default when a sidecar runs alone."""

from __future__ import annotations

from switchboard.ledger.base import SpendRecord, SpendTotals


class MemoryLedger:
    """Spend per (namespace, feature), kept in this process."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str], SpendTotals] = {}

    async def record(self, record: SpendRecord) -> None:
        key = (record.namespace, record.feature)
        old = self._totals.get(key, SpendTotals())
        self._totals[key] = SpendTotals(
            old.cost + record.cost, old.requests + 1, old.usage + record.usage
        )

    async def feature_totals(self, namespace: str, feature: str) -> SpendTotals:
        return self._totals.get((namespace, feature), SpendTotals())

    async def close(self) -> None:
        return None
