"""Pure: what a client is told when its routed request gets no answer.

Owns the status, OpenAI error type, code, message and Retry-After of every refusal after
intake. A route without a target to try: 403 when data residency leaves none, 429 when every
reachable target rests after a 429, else 503 (circuits open), with a Retry-After of the first
availability. Every target failed: 429 when all were rate limited (Retry-After: the shortest
the providers asked for, else 1 s), 502 when the last one refused the credentials, 504 when
all timed out, else 502. A provider that rejects the request itself: its 4xx, passed through.
A budget block: 429 `budget_exceeded` naming the budget, its limit and when its period ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from switchboard.budget.decide import BudgetDecision
from switchboard.config.runtime import ModelRuntime
from switchboard.pricing.cost import format_usd
from switchboard.providers.openai_compat import UpstreamError
from switchboard.routing.strategies import Skipped

# Retry-After when a budget decision does not say when its period ends.
UNKNOWN_PERIOD_WAIT = 60


@dataclass(frozen=True, slots=True)
class Refusal:
    """An OpenAI-style error answer; `retry_after` in whole seconds, None for no header."""

    status: int
    message: str
    type_: str
    code: str
    retry_after: int | None = None


def no_target_refusal(
    route: str, region: str | None, wait_seconds: float | None, skipped: Sequence[Skipped]
) -> Refusal:
    """Why a plan without steps leaves nothing to try; `wait_seconds` and `skipped` are the
    plan's (None: no skipped target will become available, residency excluded them all)."""
    if wait_seconds is None:
        return Refusal(
            403,
            f"route {route!r} has no target that requests from region {region!r} may reach "
            "under the policy's dataResidency",
            "data_residency_error",
            "no_allowed_target",
        )
    wait = max(1, math.ceil(wait_seconds))
    if all(s.reason in ("resting", "residency") for s in skipped):
        # Every reachable target rests after a 429: the same answer as when they all said 429.
        return Refusal(
            429,
            f"every target of route {route!r} is rate limited; retry in {wait}s",
            "rate_limit_error",
            "upstream_rate_limited",
            wait,
        )
    return Refusal(
        503,
        f"every target of route {route!r} is unavailable (circuit open or rate limited); "
        f"retry in {wait}s",
        "service_unavailable",
        "no_healthy_target",
        wait,
    )


def failure_refusal(failures: Sequence[tuple[ModelRuntime, UpstreamError]]) -> Refusal:
    """The answer when every attempt failed; `failures` is in attempt order, never empty."""
    model, last = failures[-1]
    summary = "; ".join(f"{m.name} ({m.provider.name}): {e.kind}: {e.message}" for m, e in failures)
    retry_after = None
    if all(e.kind == "rate_limited" for _, e in failures):
        wait = min((e.retry_after for _, e in failures if e.retry_after is not None), default=1.0)
        retry_after = max(1, math.ceil(wait))
        status, type_, code = 429, "rate_limit_error", "upstream_rate_limited"
    elif last.kind == "auth":
        status, type_, code = 502, "upstream_auth_error", "upstream_auth_failed"
        summary = f"provider {model.provider.name!r} rejected the credentials; {summary}"
    elif all(e.kind == "timeout" for _, e in failures):
        status, type_, code = 504, "upstream_timeout", "upstream_timeout"
    else:
        status, type_, code = 502, "upstream_error", "upstream_failed"
    message = f"all {len(failures)} targets failed: {summary}"
    return Refusal(status, message, type_, code, retry_after)


def rejection_refusal(provider: str, error: UpstreamError) -> Refusal:
    """The provider's own 4xx for a request it will not take (an error of kind `client`)."""
    return Refusal(
        error.status or 400,
        f"provider {provider!r} rejected the request: {error.message}",
        "invalid_request_error",
        "upstream_rejected",
    )


def budget_retry_after(decision: BudgetDecision, now: datetime) -> int:
    """Whole seconds until the blocking budget's period ends (at least 1)."""
    end = decision.period_end
    if end is None:
        return UNKNOWN_PERIOD_WAIT
    return max(1, math.ceil((end - now).total_seconds()))


def budget_refusal_body(decision: BudgetDecision, feature: str) -> dict[str, object]:
    """The 429 `budget_exceeded` error object: the budget, its limit and its period's end."""
    end = decision.period_end
    limit = format_usd(decision.limit) if decision.limit is not None else "?"
    message = (
        f"feature {feature!r} reached {decision.percent}% of budget "
        f"{decision.budget!r} ({limit} USD per {decision.period} period); "
        f"the period ends {end.isoformat() if end else 'later'}"
    )
    return {
        "error": {
            "message": message,
            "type": "budget_exceeded",
            "param": None,
            "code": "budget_exceeded",
            "budget": decision.budget,
            "feature": feature,
            "limitUSD": limit,
            "period": decision.period,
            "periodEnd": end.isoformat() if end else None,
        }
    }
