"""Pure: may a request spend, given each budget of its feature? (alert, downgrade, block)

Thresholds are evaluated against spend + in-flight reservations + this request's estimated
(maximum) cost; reaching a threshold exactly counts as reaching it. Among the thresholds
reached, across every budget of the feature, the most severe action wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from switchboard.api.v1alpha1 import FeatureBudgetSpec
from switchboard.budget.periods import Window

Action = Literal["allow", "alert", "downgrade", "block"]
SEVERITY: dict[Action, int] = {"allow": 0, "alert": 1, "downgrade": 2, "block": 3}
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One budget as the sidecar sees it now."""

    name: str
    spec: FeatureBudgetSpec
    window: Window
    spent: Decimal
    reserved: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    action: Action
    budget: str | None = None
    percent: Decimal | None = None
    downgrade_to: str | None = None
    limit: Decimal | None = None
    period_end: datetime | None = None
    period: str | None = None

    @property
    def severity(self) -> int:
        return SEVERITY[self.action]


ALLOW = BudgetDecision("allow")


def percent_used(amount: Decimal, limit: Decimal) -> Decimal:
    """`amount` as a percentage of `limit`; a zero limit is fully used by anything."""
    if limit <= 0:
        return HUNDRED if amount <= 0 else Decimal("Infinity")
    return amount * HUNDRED / limit


def budget_decision(
    views: Sequence[BudgetView], estimate: Decimal, *, enforce_only: bool = False
) -> BudgetDecision:
    """The action for a request expected to cost at most `estimate`.

    `enforce_only` looks at `block` thresholds alone: the check before each further paid
    attempt (retry, fallback, cascade step) of a request already admitted.
    """
    decision = ALLOW
    for view in views:
        projected = view.spent + view.reserved + estimate
        used = percent_used(projected, view.spec.limit_usd)
        for threshold in view.spec.thresholds:
            if used < threshold.percent or (enforce_only and threshold.action != "block"):
                continue
            candidate = BudgetDecision(
                action=threshold.action,
                budget=view.name,
                percent=threshold.percent,
                downgrade_to=threshold.downgrade_to,
                limit=view.spec.limit_usd,
                period_end=view.window.end,
                period=view.spec.period,
            )
            if candidate.severity > decision.severity:
                decision = candidate
    return decision


def enforcing_percent(spec: FeatureBudgetSpec) -> Decimal | None:
    """The lowest threshold that changes a request (downgrade or block), if any."""
    return min(
        (t.percent for t in spec.thresholds if t.action in ("downgrade", "block")), default=None
    )
