from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from switchboard.api.v1alpha1 import FeatureBudgetSpec
from switchboard.budget.decide import BudgetView, budget_decision, percent_used
from switchboard.budget.periods import window_of

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def view(spent: str, reserved: str = "0", **spec: Any) -> BudgetView:
    fields: dict[str, Any] = {
        "feature": "f",
        "limitUSD": "100",
        "period": "weekly",
        "thresholds": [
            {"percent": 80, "action": "alert"},
            {"percent": 100, "action": "downgrade", "downgradeTo": "cheap"},
            {"percent": 120, "action": "block"},
        ],
    }
    fields.update(spec)
    budget = FeatureBudgetSpec.model_validate(fields)
    return BudgetView("b", budget, window_of("weekly", NOW), Decimal(spent), Decimal(reserved))


def test_below_every_threshold_allows() -> None:
    assert budget_decision([view("79")], Decimal("0.99")).action == "allow"


def test_spend_plus_estimate_reaching_80_percent_alerts() -> None:
    assert budget_decision([view("79")], Decimal(1)).action == "alert"


def test_reaching_the_limit_exactly_downgrades() -> None:
    decision = budget_decision([view("99.5")], Decimal("0.5"))
    assert (decision.action, decision.downgrade_to) == ("downgrade", "cheap")


def test_reservations_count_like_spend() -> None:
    assert budget_decision([view("100", reserved="19")], Decimal(1)).action == "block"


def test_block_names_the_budget_and_the_period_end() -> None:
    decision = budget_decision([view("120")], Decimal(0))
    assert decision.action == "block"
    assert decision.budget == "b"
    assert decision.limit == Decimal(100)
    assert decision.period_end == datetime(2026, 11, 30, tzinfo=UTC)


def test_most_severe_action_wins_across_budgets() -> None:
    daily = view("5", limitUSD="5", thresholds=[{"percent": 100, "action": "block"}])
    weekly = view("81")
    assert budget_decision([weekly, daily], Decimal("0.01")).action == "block"


def test_enforce_only_ignores_alert_and_downgrade() -> None:
    assert budget_decision([view("110")], Decimal(1), enforce_only=True).action == "allow"
    assert budget_decision([view("119")], Decimal(1), enforce_only=True).action == "block"


def test_zero_limit_is_reached_by_anything() -> None:
    assert percent_used(Decimal(0), Decimal(0)) == 100
    assert budget_decision([view("0", limitUSD="0")], Decimal("0.0001")).action == "block"


def test_no_thresholds_never_acts() -> None:
    assert budget_decision([view("1000", thresholds=[])], Decimal(1)).action == "allow"
