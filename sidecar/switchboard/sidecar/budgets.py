"""Edge: what each feature has spent, as this sidecar sees it; reservations and leases.

Spend is read from the ledger in the background (never in series with a request) and grows at
once with this sidecar's own records; a request reads it fresh only when its feature is within
`fresh_margin` percent of a threshold that changes requests (downgrade or block).

Before each paid attempt (first try, retry, fallback, cascade step, downgrade) the sidecar
reserves the attempt's maximum cost; the real cost replaces the reservation once the attempt
is priced. With a shared ledger, a reservation must also be covered by budget this sidecar
holds on lease (`ledger/leases.py`): the sum of all leases of a window stays below the block
limit, so the spend of covered attempts cannot pass it. Overspend bound: past a block threshold
a period grows only by attempts already in flight, and only by what they cost beyond their
reserved maximum (a prompt longer than estimated, a provider ignoring max_tokens). Leases are
taken in chunks (`lease_share` of the limit), so a sidecar makes a round trip to Redis once per
chunk, not per request; unused lease goes back on shutdown. If Redis cannot be reached, the
sidecar enforces budgets on what it knows and says so in its log: no request fails for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from switchboard.budget.decide import (
    ALLOW,
    HUNDRED,
    BudgetDecision,
    BudgetView,
    budget_decision,
    enforcing_percent,
    percent_used,
)
from switchboard.budget.periods import Period, Window, window_of
from switchboard.config.model import BudgetConfig
from switchboard.config.runtime import RuntimeConfig
from switchboard.ledger.base import SpendLedger
from switchboard.telemetry.metrics import Metrics

log = logging.getLogger("switchboard.sidecar.budgets")
ZERO = Decimal(0)
UNREACHABLE = (ConnectionError, OSError, TimeoutError)


class Leases(Protocol):
    async def take(
        self, namespace: str, feature: str, window: Window, want: Decimal, limit: Decimal
    ) -> Decimal: ...

    async def give_back(
        self, namespace: str, feature: str, window: Window, amount: Decimal
    ) -> None: ...

    async def close(self) -> None: ...


def block_limit(view: BudgetView) -> Decimal | None:
    """The spend at which the budget blocks, if it ever does."""
    percents = [t.percent for t in view.spec.thresholds if t.action == "block"]
    return min(percents) * view.spec.limit_usd / HUNDRED if percents else None


class BudgetTracker:
    def __init__(
        self,
        ledger: SpendLedger,
        namespace: str,
        metrics: Metrics,
        now: Callable[[], datetime],
        *,
        leases: Leases | None = None,
        fresh_margin: Decimal = Decimal(10),
        lease_share: Decimal = Decimal("0.02"),
    ) -> None:
        self._ledger = ledger
        self._namespace = namespace
        self._metrics = metrics
        self._now = now
        self._leases = leases
        self._fresh_margin = fresh_margin
        self._lease_share = lease_share
        self._spent: dict[tuple[str, str], Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._leased: dict[tuple[str, str], tuple[Window, Decimal]] = {}
        self._windows: dict[tuple[Period, date], Window] = {}
        self._published_limits: dict[tuple[str, str, str], Decimal] = {}

    def _window(self, period: Period, now: datetime) -> Window:
        """`window_of`, computed once per period and UTC day (the request path asks often)."""
        if now.tzinfo is not UTC:
            return window_of(period, now)
        key = (period, now.date())
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) > 16:
                self._windows.clear()
            window = self._windows[key] = window_of(period, now)
        return window

    def _views(self, budgets: tuple[BudgetConfig, ...], now: datetime) -> list[BudgetView]:
        views = []
        for budget in budgets:
            window = self._window(budget.spec.period, now)
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

    async def admit(self, runtime: RuntimeConfig, feature: str, amount: Decimal) -> BudgetDecision:
        """Reserve `amount` for one paid attempt, unless that would reach a block threshold."""
        budgets = runtime.feature_budgets.get(feature)
        if budgets:
            views = self._views(budgets, self._now())
            decision = budget_decision(views, amount, enforce_only=True)
            if decision.action == "block":
                return decision
            for view in views:
                if not await self._covered(view, amount):
                    return budget_decision([view], view.spec.limit_usd, enforce_only=True)
        self._reserved[feature] = self._reserved.get(feature, ZERO) + amount
        return ALLOW

    async def _covered(self, view: BudgetView, amount: Decimal) -> bool:
        """Take `amount` out of this sidecar's lease on the view's window (leasing more)."""
        limit = block_limit(view)
        if self._leases is None or limit is None:
            return True
        key = (view.spec.feature, view.window.label)
        held = self._leased.get(key, (view.window, ZERO))[1]
        if held < amount:
            want = max(amount - held, limit * self._lease_share)
            try:
                held += await self._leases.take(
                    self._namespace, view.spec.feature, view.window, want, limit
                )
            except UNREACHABLE as exc:
                log.warning("budget leases unreachable, enforcing on local spend: %s", exc)
                return True
        if held < amount:
            self._leased[key] = (view.window, held)
            return False
        self._leased[key] = (view.window, held - amount)
        return True

    def _adjust_leases(self, runtime: RuntimeConfig, feature: str, delta: Decimal) -> None:
        if not self._leased:
            return
        now = self._now()
        for budget in runtime.feature_budgets.get(feature, ()):
            key = (feature, self._window(budget.spec.period, now).label)
            if key in self._leased:
                window, held = self._leased[key]
                self._leased[key] = (window, held + delta)

    def release(self, runtime: RuntimeConfig, feature: str, amount: Decimal) -> None:
        """An attempt's reservation ends (priced, failed or never sent)."""
        left = self._reserved.get(feature, ZERO) - amount
        if left > 0:
            self._reserved[feature] = left
        else:
            self._reserved.pop(feature, None)
        self._adjust_leases(runtime, feature, amount)

    def spent(self, runtime: RuntimeConfig, feature: str, cost: Decimal, at: datetime) -> None:
        """This sidecar's own spend, seen at once (the ledger may take a moment)."""
        self._adjust_leases(runtime, feature, -cost)
        for budget in runtime.feature_budgets.get(feature, ()):
            key = (feature, self._window(budget.spec.period, at).label)
            self._spent[key] = self._spent.get(key, ZERO) + cost
            self._publish(budget, self._spent[key])

    def _publish(self, budget: BudgetConfig, spent: Decimal) -> None:
        labels = (budget.name, budget.spec.feature, budget.spec.team or "")
        self._metrics.budget_spent.labels(*labels).set(float(spent))
        limit = budget.spec.limit_usd
        if self._published_limits.get(labels) != limit:  # (every request books spend)
            self._published_limits[labels] = limit
            self._metrics.budget_limit.labels(*labels).set(float(limit))

    async def _refresh(self, budgets: tuple[BudgetConfig, ...], now: datetime) -> None:
        for budget in budgets:
            window = self._window(budget.spec.period, now)
            try:
                totals = await self._ledger.totals(self._namespace, budget.spec.feature, window)
            except UNREACHABLE as exc:
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

    async def close(self) -> None:
        """Give unused lease back so that other sidecars may spend it."""
        if self._leases is None:
            return
        for (feature, _), (window, held) in self._leased.items():
            try:
                await self._leases.give_back(self._namespace, feature, window, held)
            except UNREACHABLE:
                break
        await self._leases.close()
