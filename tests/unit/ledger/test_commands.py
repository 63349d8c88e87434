from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from switchboard.api.v1alpha1 import FeatureBudgetSpec, Threshold
from switchboard.budget.periods import window_of
from switchboard.config.model import BudgetConfig
from switchboard.ledger.commands import BudgetRow, budget_table

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def row(name: str, limit: str, spent: str) -> BudgetRow:
    spec = FeatureBudgetSpec(
        feature=name,
        limit_usd=Decimal(limit),
        period="weekly",
        thresholds=[Threshold(percent=Decimal(100), action="block")],
    )
    return BudgetRow(BudgetConfig(name=name, spec=spec), window_of("weekly", AT), Decimal(spent))


def test_table_aligns_numbers_right_and_rounds_usd_to_six_and_percent_to_one_decimal() -> None:
    lines = budget_table([row("a", "500", "412.1700004"), row("long-name", "0.5", "0.50000049")])
    assert lines == [
        "BUDGET     FEATURE    PERIOD                              SPENT       LIMIT  REMAINING"
        "    USED  STATE",
        "a          a          weekly 2026-11-23..2026-11-29  412.170000  500.000000  87.830000"
        "   82.4%  Ok",
        "long-name  long-name  weekly 2026-11-23..2026-11-29    0.500000    0.500000   0.000000"
        "  100.0%  Blocked",
    ]


def test_a_zero_limit_with_spend_reads_as_infinitely_used() -> None:
    assert budget_table([row("z", "0", "0.01")])[1].split()[-2:] == ["inf%", "Blocked"]
