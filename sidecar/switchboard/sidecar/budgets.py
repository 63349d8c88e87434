"""Edge: what each feature has spent, as this sidecar sees it, and its in-flight reservations.

Spend is read from the ledger in the background (never in series with a request), grows at
once with this sidecar's own records, and is read fresh only when a feature comes near a
threshold that changes requests (downgrade or block). Reservations: before each paid attempt
the sidecar reserves its maximum cost; the real cost replaces it when the attempt is priced.

Overspend bound: a request is admitted only if spend + reservations + its maximum cost stays
below the block threshold, using spend read fresh from the shared ledger once within
`fresh_margin` of it. So past the threshold, a period can only grow by attempts that were
already admitted (in flight) when it was crossed, in any sidecar — provided no more than
`fresh_margin` of the limit is spent between two background refreshes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from switchboard.budget.decide import (
    ALLOW,
    BudgetDecision,
    BudgetView,
    budget_decision,
    enforcing_percent,
    percent_used,
)
from switchboard.budget.periods import window_of
from switchboard.config.model import BudgetConfig
from switchboard.config.runtime import RuntimeConfig
from switchboard.ledger.base import SpendLedger
from switchboard.telemetry.metrics import Metrics

log = logging.getLogger("switchboard.sidecar.budgets")
ZERO = Decimal(0)


class BudgetTracker:
    def __init__(
        self,
        ledger: SpendLedger,
        namespace: str,
        metrics: Metrics,
        now: Callable[[], datetime],
        *,
        fresh_margin: Decimal = Decimal(10),
    ) -> None:
        self._ledger = ledger
        self._namespace = namespace
        self._metrics = metrics
        self._now = now
        self._fresh_margin = fresh_margin
        self._spent: dict[tuple[str, str], Decimal] = {}
        self._reserved: dict[str, Decimal] = {}

    def _views(self, budgets: tuple[BudgetConfig, ...], now: datetime) -> list[BudgetView]:
        views = []
        for budget in budgets:
            window = window_of(budget.spec.period, now)
            spent = self._spent.get((budget.spec.feature, window.label), ZERO)
            reserved = self._reserved.get(budget.spec.feature, ZERO)
            views.append(BudgetView(budget.name, budget.spec, window, spent, reserved))
        return views

    def _near(self, views: list[BudgetView], estimate: Decimal) -> bool:
        for view in views:
            enforcing = enforcing_percent(view.spec)
            used = percent_used(view.spent + view.reserved + estimate, view.spec.limit_usd)
            if enforcing is not None and used + self._fresh_margin >= enforcing:
                return True
        return False

    async def check(
        self, runtime: RuntimeConfig, feature: str, estimate: Decimal
    ) -> BudgetDecision:
        """The decision for a new request of `feature` expected to cost at most `estimate`."""
        budgets = runtime.feature_budgets.get(feature)
        if not budgets:
            return ALLOW
        now = self._now()
        views = self._views(budgets, now)
        if self._near(views, estimate):
            await self._refresh(budgets, now)
            views = self._views(budgets, now)
        return budget_decision(views, estimate)

    def admit(self, runtime: RuntimeConfig, feature: str, amount: Decimal) -> BudgetDecision:
        """Reserve `amount` for one paid attempt, unless that would reach a block threshold."""
        budgets = runtime.feature_budgets.get(feature)
        if budgets:
            decision = budget_decision(self._views(budgets, self._now()), amount, enforce_only=True)
            if decision.action == "block":
                return decision
        self._reserved[feature] = self._reserved.get(feature, ZERO) + amount
        return ALLOW

    def release(self, feature: str, amount: Decimal) -> None:
        left = self._reserved.get(feature, ZERO) - amount
        if left > 0:
            self._reserved[feature] = left
        else:
            self._reserved.pop(feature, None)

    def spent(self, runtime: RuntimeConfig, feature: str, cost: Decimal, at: datetime) -> None:
        """This sidecar's own spend, seen at once (the ledger may take a moment)."""
        for budget in runtime.feature_budgets.get(feature, ()):
            key = (feature, window_of(budget.spec.period, at).label)
            self._spent[key] = self._spent.get(key, ZERO) + cost
            self._publish(budget, self._spent[key])

    def _publish(self, budget: BudgetConfig, spent: Decimal) -> None:
        labels = (budget.name, budget.spec.feature, budget.spec.team or "")
        self._metrics.budget_spent.labels(*labels).set(float(spent))
        self._metrics.budget_limit.labels(*labels).set(float(budget.spec.limit_usd))

    async def _refresh(self, budgets: tuple[BudgetConfig, ...], now: datetime) -> None:
        for budget in budgets:
            window = window_of(budget.spec.period, now)
            try:
                totals = await self._ledger.totals(self._namespace, budget.spec.feature, window)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.warning("ledger unreachable, budgets use the last known spend: %s", exc)
                return
            key = (budget.spec.feature, window.label)
            # Spend in a window only grows: never let a lagging read lower what we know.
            self._spent[key] = max(self._spent.get(key, ZERO), totals.total.cost)
            self._publish(budget, self._spent[key])

    async def refresh_forever(self, current: Callable[[], RuntimeConfig], interval: float) -> None:
        """Background refresh of every budget of the config in force."""
        while True:
            runtime = current()
            budgets = tuple(b for group in runtime.feature_budgets.values() for b in group)
            if budgets:
                await self._refresh(budgets, self._now())
            await asyncio.sleep(interval)
