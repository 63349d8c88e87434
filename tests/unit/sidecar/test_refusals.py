"""What a client is told when its routed request gets no answer: status, type, code, message
and Retry-After, for every way a plan, the targets or a budget can refuse it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from switchboard.budget.decide import BudgetDecision
from switchboard.config.runtime import ModelRuntime, ProviderRuntime
from switchboard.pricing.cost import UnitPrice
from switchboard.providers.openai_compat import ErrorKind, UpstreamError
from switchboard.routing.strategies import Skipped, SkipReason
from switchboard.sidecar.refusals import (
    UNKNOWN_PERIOD_WAIT,
    budget_refusal_body,
    budget_retry_after,
    failure_refusal,
    no_target_refusal,
    rejection_refusal,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def model(name: str, provider: str = "openai") -> ModelRuntime:
    return ModelRuntime(
        name=name,
        provider=ProviderRuntime(provider, "https://x/v1", "openai", None, None, None, 30, 5, 10),
        upstream_model=name,
        type="chat",
        price=UnitPrice(Decimal(1), Decimal(2), Decimal(1)),
        labels={},
    )


def error(
    kind: ErrorKind, retry_after: float | None = None, status: int | None = 500
) -> UpstreamError:
    return UpstreamError(kind, status, kind != "client", retry_after, f"{kind} happened")


def skipped(*reasons: SkipReason) -> list[Skipped]:
    return [Skipped(model(f"m{i}"), reason) for i, reason in enumerate(reasons)]


# no target to try


def test_no_target_without_wait_is_a_residency_403_without_retry_after() -> None:
    refusal = no_target_refusal("chat", "eu", None, skipped("residency"))

    assert (refusal.status, refusal.type_, refusal.code) == (
        403,
        "data_residency_error",
        "no_allowed_target",
    )
    assert refusal.retry_after is None
    assert "'chat'" in refusal.message and "'eu'" in refusal.message


def test_no_target_all_resting_is_a_429_like_the_providers_own() -> None:
    refusal = no_target_refusal("chat", None, 2.2, skipped("resting", "residency", "resting"))

    assert (refusal.status, refusal.type_, refusal.code) == (
        429,
        "rate_limit_error",
        "upstream_rate_limited",
    )
    assert refusal.retry_after == 3
    assert refusal.message == "every target of route 'chat' is rate limited; retry in 3s"


def test_no_target_with_an_open_circuit_is_a_503() -> None:
    refusal = no_target_refusal("chat", None, 12.0, skipped("resting", "circuit_open"))

    assert (refusal.status, refusal.type_, refusal.code) == (
        503,
        "service_unavailable",
        "no_healthy_target",
    )
    assert refusal.retry_after == 12


def test_no_target_wait_under_a_second_still_asks_for_one_second() -> None:
    assert no_target_refusal("chat", None, 0.01, skipped("circuit_open")).retry_after == 1


# every target failed


def test_all_rate_limited_is_a_429_with_the_shortest_retry_after() -> None:
    failures = [(model("a"), error("rate_limited", 7.5)), (model("b"), error("rate_limited", 2.1))]

    refusal = failure_refusal(failures)

    assert (refusal.status, refusal.code) == (429, "upstream_rate_limited")
    assert refusal.retry_after == 3


def test_all_rate_limited_without_retry_after_waits_one_second() -> None:
    refusal = failure_refusal([(model("a"), error("rate_limited"))])
    assert refusal.retry_after == 1


def test_last_target_refusing_credentials_is_a_502_auth_error_naming_the_provider() -> None:
    failures = [(model("a"), error("timeout")), (model("b", "backup"), error("auth", status=401))]

    refusal = failure_refusal(failures)

    assert (refusal.status, refusal.type_, refusal.code) == (
        502,
        "upstream_auth_error",
        "upstream_auth_failed",
    )
    assert refusal.retry_after is None
    assert refusal.message.startswith(
        "all 2 targets failed: provider 'backup' rejected the credentials; "
    )


def test_all_timeouts_is_a_504() -> None:
    refusal = failure_refusal([(model("a"), error("timeout")), (model("b"), error("timeout"))])
    assert (refusal.status, refusal.type_, refusal.code) == (
        504,
        "upstream_timeout",
        "upstream_timeout",
    )


def test_mixed_failures_are_a_502_summarising_each_attempt_in_order() -> None:
    failures = [(model("a"), error("rate_limited", 1)), (model("b", "eu"), error("server"))]

    refusal = failure_refusal(failures)

    assert (refusal.status, refusal.type_, refusal.code) == (
        502,
        "upstream_error",
        "upstream_failed",
    )
    assert refusal.retry_after is None
    assert refusal.message == (
        "all 2 targets failed: a (openai): rate_limited: rate_limited happened; "
        "b (eu): server: server happened"
    )


# the provider rejects the request


@pytest.mark.parametrize(("status", "expected"), [(422, 422), (None, 400)])
def test_rejection_passes_the_providers_status_through(status: int | None, expected: int) -> None:
    refusal = rejection_refusal("openai", error("client", status=status))

    assert (refusal.status, refusal.type_, refusal.code) == (
        expected,
        "invalid_request_error",
        "upstream_rejected",
    )
    assert refusal.message == "provider 'openai' rejected the request: client happened"


# budget block

BLOCK = BudgetDecision(
    "block",
    budget="monthly",
    percent=Decimal("120"),
    limit=Decimal("50"),
    period_end=NOW + timedelta(hours=1, milliseconds=1),
    period="monthly",
)


def test_budget_retry_after_is_the_rest_of_the_period_rounded_up() -> None:
    assert budget_retry_after(BLOCK, NOW) == 3601


def test_budget_retry_after_is_at_least_one_second() -> None:
    assert budget_retry_after(BLOCK, NOW + timedelta(days=1)) == 1


def test_budget_retry_after_without_a_period_end_is_the_default() -> None:
    assert budget_retry_after(BudgetDecision("block"), NOW) == UNKNOWN_PERIOD_WAIT


def test_budget_refusal_body_names_budget_limit_and_period_end() -> None:
    body = budget_refusal_body(BLOCK, "checkout")

    assert body == {
        "error": {
            "message": "feature 'checkout' reached 120% of budget 'monthly' (50 USD per monthly "
            "period); the period ends 2026-11-25T13:00:00.001000+00:00",
            "type": "budget_exceeded",
            "param": None,
            "code": "budget_exceeded",
            "budget": "monthly",
            "feature": "checkout",
            "limitUSD": "50",
            "period": "monthly",
            "periodEnd": "2026-11-25T13:00:00.001000+00:00",
        }
    }


def test_budget_refusal_body_without_limit_or_end_says_so() -> None:
    error = budget_refusal_body(BudgetDecision("block", budget="b"), "f")["error"]

    assert isinstance(error, dict)
    assert error["limitUSD"] == "?"
    assert error["periodEnd"] is None
    assert str(error["message"]).endswith("the period ends later")
