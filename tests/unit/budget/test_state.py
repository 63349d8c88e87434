from __future__ import annotations

from decimal import Decimal

import pytest

from switchboard.api.v1alpha1 import FeatureBudgetSpec, Threshold
from switchboard.budget.state import budget_state

LADDER = (
    Threshold(percent=Decimal(80), action="alert"),
    Threshold(percent=Decimal(100), action="downgrade", downgrade_to="gpt-4o-mini"),
    Threshold(percent=Decimal(120), action="block"),
)


def spec(limit: str = "500", thresholds: tuple[Threshold, ...] = LADDER) -> FeatureBudgetSpec:
    return FeatureBudgetSpec(
        feature="onboarding", limit_usd=Decimal(limit), period="weekly", thresholds=list(thresholds)
    )


@pytest.mark.parametrize(
    ("spent", "state"),
    [
        ("0", "Ok"),
        ("399.999999", "Ok"),
        ("400", "Warning"),
        ("499.99", "Warning"),
        ("500", "Downgraded"),
        ("599.999999999999", "Downgraded"),
        ("600", "Blocked"),
        ("10000", "Blocked"),
    ],
)
def test_spend_on_the_ladder_gives_the_highest_threshold_reached(spent: str, state: str) -> None:
    assert budget_state(Decimal(spent), spec()) == state


def test_budget_without_thresholds_is_always_ok() -> None:
    assert budget_state(Decimal(10**6), spec(thresholds=())) == "Ok"


def test_alert_listed_above_block_does_not_lift_the_block() -> None:
    mixed = (
        Threshold(percent=Decimal(100), action="block"),
        Threshold(percent=Decimal(150), action="alert"),
    )
    assert budget_state(Decimal(800), spec(thresholds=mixed)) == "Blocked"


def test_zero_limit_is_reached_by_nothing_spent() -> None:
    assert budget_state(Decimal(0), spec(limit="0")) == "Downgraded"
    assert budget_state(Decimal("0.01"), spec(limit="0")) == "Blocked"
