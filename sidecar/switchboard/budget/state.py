"""Pure: the state a budget is in for what its feature has spent (Ok, Warning, Downgraded, Blocked).

The state names what the sidecar now does to the feature's requests, so it follows the same
rule as `budget_decision`: a threshold is reached when spend is at or above its percent of the
limit, and among the thresholds reached the most severe action decides. Thresholds are
validated to ascend, so that is the highest threshold reached.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from switchboard.api.v1alpha1 import FeatureBudgetSpec, ThresholdAction
from switchboard.budget.decide import percent_used

BudgetState = Literal["Ok", "Warning", "Downgraded", "Blocked"]

STATE_OF: dict[ThresholdAction, BudgetState] = {
    "alert": "Warning",
    "downgrade": "Downgraded",
    "block": "Blocked",
}
_SEVERITY: dict[BudgetState, int] = {"Ok": 0, "Warning": 1, "Downgraded": 2, "Blocked": 3}


def budget_state(spent: Decimal, spec: FeatureBudgetSpec) -> BudgetState:
    """The state `spent` (USD in the current window) puts the budget `spec` in."""
    used = percent_used(spent, spec.limit_usd)
    reached = (STATE_OF[t.action] for t in spec.thresholds if used >= t.percent)
    return max(reached, key=_SEVERITY.__getitem__, default="Ok")
