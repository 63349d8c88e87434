"""budgets: FeatureBudget status from ledger totals, and each threshold alerted once a period."""

from __future__ import annotations

import re
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from switchboard.api.v1alpha1 import AlertSent, FeatureBudgetStatus
from switchboard.ledger.base import Totals, WindowTotals
from switchboard.operator import budgets
from switchboard.operator.budgets import (
    MAX_WEBHOOK_ATTEMPTS,
    BudgetOutcome,
    LedgerReading,
    budget_outcome,
    parse_budget,
)
from switchboard.operator.reconcile import status_json
from switchboard.pricing.cost import Usage

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)
NOW = MONDAY + timedelta(days=2, hours=9)
BUDGET: dict[str, Any] = {
    "apiVersion": "switchboard.dev/v1alpha1",
    "kind": "FeatureBudget",
    "metadata": {"name": "onboarding", "namespace": "shop", "uid": "uid-1", "generation": 2},
    "spec": {
        "feature": "onboarding-assistant",
        "team": "growth",
        "limitUSD": 500,
        "period": "weekly",
        "thresholds": [
            {"percent": 80, "action": "alert"},
            {"percent": 100, "action": "downgrade", "downgradeTo": "gpt-4o-mini"},
            {"percent": 120, "action": "block"},
        ],
        "alerts": {"webhookSecretRef": {"name": "slack", "key": "url"}, "events": True},
    },
}


def totals(spent: str, **by_model: str) -> WindowTotals:
    return WindowTotals(
        Totals(Decimal(spent), 7, Usage(1000, 200)),
        {key: Totals(Decimal(cost), 3, Usage(10, 2)) for key, cost in by_model.items()},
    )


def read(spent: str, **by_model: str) -> LedgerReading:
    return LedgerReading(totals(spent, **by_model), "LedgerRead", "7 request(s)")


def run(
    reading: LedgerReading,
    *,
    status: dict[str, Any] | None = None,
    now: datetime = NOW,
    **spec: Any,
) -> BudgetOutcome:
    body = deepcopy(BUDGET)
    body["spec"].update(spec)
    if status is not None:
        body["status"] = status
    return budget_outcome(parse_budget(body), reading, now=now)


def delivered(outcome: BudgetOutcome) -> dict[str, Any]:
    """The status once every pending channel was delivered (as the edge would write it)."""
    status = outcome.status
    for alert in outcome.pending:
        status = budgets.with_alert(
            status, budgets.webhook_delivered(budgets.event_delivered(alert), None)
        )
    return status_json(status)


def test_status_shows_the_exact_spend_of_the_period() -> None:
    result = run(read("412.170000000001", **{"growth/openai/gpt-4o": "412.170000000001"}))
    status = status_json(result.status)
    assert status["spentUSD"] == "412.170000000001"
    assert status["remainingUSD"] == "87.829999999999"
    assert status["percentUsed"] == 82.43
    assert status["state"] == "Warning"
    assert (status["periodStart"], status["periodEnd"]) == (
        "2026-11-23T00:00:00Z",
        "2026-11-30T00:00:00Z",
    )
    assert status["byModel"] == [
        {
            "team": "growth",
            "provider": "openai",
            "model": "gpt-4o",
            "spentUSD": "412.170000000001",
            "requests": 3,
            "inputTokens": 10,
            "outputTokens": 2,
        }
    ]
    assert status["lastUpdated"] == "2026-11-25T09:00:00Z"
    assert status["observedGeneration"] == 2
    (current,) = status["conditions"]
    assert (current["type"], current["status"], current["reason"]) == (
        "Current",
        "True",
        "LedgerRead",
    )


@pytest.mark.parametrize(
    ("spent", "shown", "remaining", "state"),
    [
        ("0", "0", "500", "Ok"),
        ("500.000", "500", "0", "Downgraded"),
        ("650.5", "650.5", "0", "Blocked"),
        ("1E-12", "0.000000000001", "499.999999999999", "Ok"),
    ],
)
def test_money_is_a_plain_decimal_and_remaining_never_goes_below_zero(
    spent: str, shown: str, remaining: str, state: str
) -> None:
    status = status_json(run(read(spent)).status)
    assert (status["spentUSD"], status["remainingUSD"], status["state"]) == (
        shown,
        remaining,
        state,
    )


def test_model_names_with_slashes_stay_whole_in_the_breakdown() -> None:
    result = run(read("1", **{"growth/together/meta-llama/Llama-3-8b": "1"}))
    assert result.status.by_model[0].model == "meta-llama/Llama-3-8b"


def test_crossing_80_percent_records_one_alert_with_both_channels_pending() -> None:
    result = run(read("400"))
    assert [(a.percent, a.action, a.event, a.webhook) for a in result.due] == [
        (Decimal(80), "alert", "Pending", "Pending")
    ]
    assert result.status.alerts_sent == list(result.due)
    assert result.pending == list(result.due)
    assert result.due[0].period_start == "2026-11-23T00:00:00Z"


def test_below_the_first_threshold_nothing_is_due() -> None:
    assert run(read("399.999999999999")).due == ()


def test_an_alert_is_due_once_per_period_however_often_spend_is_read() -> None:
    first = run(read("401"))
    second = run(read("450"), status=delivered(first), now=NOW + timedelta(minutes=1))
    third = run(read("460"), status=status_json(second.status), now=NOW + timedelta(hours=30))
    assert (len(first.due), second.due, third.due) == (1, (), ())
    assert second.pending == [] and len(third.status.alerts_sent) == 1


def test_the_next_period_alerts_again_and_forgets_the_last_one() -> None:
    first = run(read("401"))
    next_week = run(read("420"), status=delivered(first), now=NOW + timedelta(days=7))
    assert [a.period_start for a in next_week.due] == ["2026-11-30T00:00:00Z"]
    assert next_week.status.alerts_sent == list(next_week.due)


def test_a_jump_past_several_thresholds_alerts_each_once() -> None:
    result = run(read("700"))
    assert [a.action for a in result.due] == ["alert", "downgrade", "block"]
    later = run(read("800"), status=delivered(result))
    assert later.due == ()


def test_a_higher_threshold_alerts_after_a_lower_one_was_sent() -> None:
    first = run(read("401"))
    second = run(read("501"), status=delivered(first))
    assert [(a.percent, a.action) for a in second.due] == [(Decimal(100), "downgrade")]


def test_channels_that_are_not_configured_are_off() -> None:
    result = run(read("401"), alerts={"events": False})
    assert [(a.event, a.webhook) for a in result.due] == [("Off", "Off")]
    assert result.pending == []


def test_recorded_but_undelivered_alert_is_delivered_after_a_restart_not_recorded_again() -> None:
    recorded = status_json(run(read("401")).status)  # the operator died before delivering
    restarted = run(read("402"), status=recorded, now=NOW + timedelta(seconds=30))
    assert restarted.due == ()
    assert [(a.event, a.webhook) for a in restarted.pending] == [("Pending", "Pending")]


def test_webhook_failures_are_retried_then_given_up() -> None:
    alert = run(read("401")).due[0]
    for attempt in range(1, MAX_WEBHOOK_ATTEMPTS):
        alert = budgets.webhook_delivered(alert, "the webhook answered HTTP 503")
        assert (alert.webhook, alert.attempts) == ("Pending", attempt)
    alert = budgets.webhook_delivered(alert, "the webhook answered HTTP 503")
    assert (alert.webhook, alert.message) == ("Failed", "the webhook answered HTTP 503")


def test_webhook_success_clears_the_last_error() -> None:
    alert = budgets.webhook_delivered(run(read("401")).due[0], "timeout")
    alert = budgets.webhook_delivered(alert, None)
    assert (alert.webhook, alert.attempts, alert.message) == ("Sent", 2, None)


def test_unreadable_ledger_changes_only_the_condition() -> None:
    first = status_json(run(read("401")).status)
    outage = LedgerReading(None, "LedgerUnreachable", "cannot read redis://r:6379/0: refused")
    result = run(outage, status=first, now=NOW + timedelta(minutes=5))
    status = status_json(result.status)
    assert result.due == ()
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        k: v for k, v in first.items() if k != "conditions"
    }
    (current,) = status["conditions"]
    assert (current["status"], current["reason"]) == ("False", "LedgerUnreachable")
    assert current["lastTransitionTime"] == "2026-11-25T09:05:00Z"


def test_unparseable_budget_is_invalid_with_the_path() -> None:
    body = deepcopy(BUDGET)
    body["spec"]["period"] = "hourly"
    parsed = parse_budget(body)
    result = budget_outcome(parsed, LedgerReading(None, "Invalid", ""), now=NOW)
    (current,) = result.status.conditions
    assert (current.status, current.reason) == ("False", "Invalid")
    assert current.message.startswith("spec.period: ")


def test_zero_limit_reports_no_percent_but_blocks() -> None:
    status = status_json(run(read("0.01"), limitUSD=0).status)
    assert "percentUsed" not in status and status["state"] == "Blocked"


def test_ledger_url_prefers_the_override_then_the_first_policy_that_sets_one() -> None:
    def policy(name: str, url: str | None) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"ledger": {"redisURL": url} if url else {}}}

    policies = [policy("b", "redis://b:6379/0"), policy("a", None), policy("c", "redis://c/0")]
    assert budgets.ledger_url(None, policies) == "redis://b:6379/0"
    assert budgets.ledger_url("redis://override/1", policies) == "redis://override/1"
    assert budgets.ledger_url(None, [policy("a", None)]) is None


def test_event_name_is_stable_per_budget_period_and_threshold() -> None:
    parsed = parse_budget(BUDGET)
    alert = run(read("401")).due[0]
    name = budgets.event_name(parsed, alert)
    assert name == budgets.event_name(parsed, alert.model_copy(update={"at": "later"}))
    assert re.fullmatch(r"onboarding\.[0-9a-f]{16}", name)
    other_period = alert.model_copy(update={"period_start": "2026-11-30T00:00:00Z"})
    other_threshold = alert.model_copy(update={"percent": Decimal(100), "action": "downgrade"})
    recreated = deepcopy(BUDGET)
    recreated["metadata"]["uid"] = "uid-2"
    names = {
        name,
        budgets.event_name(parsed, other_period),
        budgets.event_name(parsed, other_threshold),
        budgets.event_name(parse_budget(recreated), alert),
    }
    assert len(names) == 4


def test_alert_event_is_a_warning_on_the_budget() -> None:
    parsed = parse_budget(BUDGET)
    alert = run(read("401")).due[0]
    event = budgets.alert_event(parsed, alert, "text", NOW)
    assert event["involvedObject"] == {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "name": "onboarding",
        "namespace": "shop",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "BudgetThresholdReached",
        "text",
    )


@pytest.mark.parametrize(
    ("spent", "index", "effect"),
    [
        ("401", 0, "the 80% threshold is reached: alert."),
        ("501", 1, "the 100% threshold is reached: requests are downgraded to gpt-4o-mini."),
        ("601", 2, "the 120% threshold is reached: requests are refused until the period ends."),
    ],
)
def test_alert_message_says_who_spent_what_and_what_happens_now(
    spent: str, index: int, effect: str
) -> None:
    result = run(read(spent))
    message = budgets.alert_message(parse_budget(BUDGET), result.due[index], result.status)
    assert message.startswith(
        f"FeatureBudget shop/onboarding: feature onboarding-assistant (team growth) has spent "
        f"${spent} of $500 ("
    )
    assert "in the weekly period from 2026-11-23T00:00:00Z" in message
    assert message.endswith(effect)


def test_alerts_round_trip_through_status_json() -> None:
    status = delivered(run(read("700")))
    again = FeatureBudgetStatus.model_validate(status)
    assert [(a.percent, a.event, a.webhook) for a in again.alerts_sent] == [
        (Decimal(80), "Sent", "Sent"),
        (Decimal(100), "Sent", "Sent"),
        (Decimal(120), "Sent", "Sent"),
    ]
    assert isinstance(again.alerts_sent[0], AlertSent)
