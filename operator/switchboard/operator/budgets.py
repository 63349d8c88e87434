"""Pure: a FeatureBudget's status from its feature's ledger totals, and the alerts now due.

Each threshold alerts once per period (UTC calendar window). An alert is first *recorded* in
`status.alertsSent` with its channels `Pending`, and only then delivered; each channel is marked
`Sent` once delivered. So an alert is never lost, and the only possible duplicate is a webhook
POST repeated because the operator died (or lost the API server) between the webhook's answer
and the status write that marks it `Sent`. The Kubernetes Event cannot be duplicated: its name is
derived from the budget, period and threshold, so a second create is refused by the API server.

Money in status is an exact decimal string (`format_usd`: no exponent, no trailing zeros);
`percentUsed` is a number rounded to 0.01 for display, and thresholds compare exact Decimals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import ValidationError

from switchboard.api import names
from switchboard.api.problems import Problem
from switchboard.api.v1alpha1 import (
    AlertSent,
    FeatureBudget,
    FeatureBudgetSpec,
    FeatureBudgetStatus,
    ModelSpend,
)
from switchboard.budget.decide import percent_used
from switchboard.budget.periods import Window, window_of
from switchboard.budget.state import budget_state
from switchboard.config.load import problems_of
from switchboard.ledger.base import WindowTotals
from switchboard.operator.reconcile import (
    Body,
    condition,
    meta_of,
    previous_status,
    timestamp,
    trimmed,
    with_condition,
)
from switchboard.pricing.cost import format_usd

CURRENT = "Current"
MAX_WEBHOOK_ATTEMPTS = 10
"""Webhook deliveries tried (one per timer tick) before an alert's webhook is `Failed`."""
EVENT_REASON = "BudgetThresholdReached"
_HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ParsedBudget:
    """A FeatureBudget read from its body, or the problems that kept it from being read."""

    body: Body
    budget: FeatureBudget | None
    problems: tuple[Problem, ...] = ()

    @property
    def name(self) -> str:
        return str(meta_of(self.body).get("name"))

    @property
    def namespace(self) -> str:
        return str(meta_of(self.body).get("namespace"))


def parse_budget(body: Body) -> ParsedBudget:
    try:
        return ParsedBudget(
            body, FeatureBudget.model_validate(trimmed(body, names.KIND_FEATURE_BUDGET))
        )
    except ValidationError as exc:
        return ParsedBudget(body, None, tuple(problems_of(exc, "")))


@dataclass(frozen=True, slots=True)
class LedgerReading:
    """What the edge got from the ledger: the window's totals, or why there are none."""

    totals: WindowTotals | None
    reason: str
    message: str


def ledger_url(override: str | None, policies: Iterable[Body]) -> str | None:
    """The Redis ledger of a namespace: the operator's override, else the `spec.ledger.redisURL`
    of its RoutingPolicies (the first by name that sets one); None: no shared ledger."""
    if override:
        return override
    for policy in sorted(policies, key=lambda p: str(meta_of(p).get("name"))):
        spec = policy.get("spec")
        ledger = spec.get("ledger") if isinstance(spec, Mapping) else None
        url = ledger.get("redisURL") if isinstance(ledger, Mapping) else None
        if isinstance(url, str) and url:
            return url
    return None


NO_LEDGER = LedgerReading(
    None,
    "NoLedger",
    "no shared ledger: no RoutingPolicy in this namespace sets spec.ledger.redisURL and the "
    "operator has no --ledger; each sidecar keeps its spend in memory",
)


@dataclass(frozen=True, slots=True)
class BudgetOutcome:
    """A budget's new status and the alerts it newly records."""

    status: FeatureBudgetStatus
    due: tuple[AlertSent, ...] = field(default=())
    """Recorded in `status.alertsSent` for the first time: persist before delivering."""

    @property
    def reason(self) -> str:
        """The reason of the `Current` condition: LedgerRead, NoLedger, LedgerUnreachable, ..."""
        return next((c.reason for c in self.status.conditions if c.type == CURRENT), "Unknown")

    @property
    def pending(self) -> list[AlertSent]:
        """Recorded alerts with a channel still to deliver (new ones and earlier leftovers)."""
        return [a for a in self.status.alerts_sent if "Pending" in (a.event, a.webhook)]


def _percent(used: Decimal) -> float | None:
    return float(used.quantize(_HUNDREDTH, rounding=ROUND_HALF_EVEN)) if used.is_finite() else None


def _by_model(totals: WindowTotals) -> list[ModelSpend]:
    out = []
    for key, slice_ in totals.by_model.items():
        team, provider, model = [*key.split("/", 2), "", ""][:3]
        out.append(
            ModelSpend(
                team=team,
                provider=provider,
                model=model,
                spent_usd=format_usd(slice_.cost),
                requests=slice_.requests,
                input_tokens=slice_.usage.input_tokens,
                output_tokens=slice_.usage.output_tokens,
            )
        )
    return out


def _due(
    spec: FeatureBudgetSpec, kept: Sequence[AlertSent], used: Decimal, window: Window, now: datetime
) -> tuple[AlertSent, ...]:
    recorded = {(a.percent, a.action) for a in kept}
    return tuple(
        AlertSent(
            period_start=timestamp(window.start),
            percent=t.percent,
            action=t.action,
            at=timestamp(now),
            event="Pending" if spec.alerts.events else "Off",
            webhook="Pending" if spec.alerts.webhook_secret_ref is not None else "Off",
        )
        for t in spec.thresholds
        if used >= t.percent and (t.percent, t.action) not in recorded
    )


def budget_outcome(parsed: ParsedBudget, reading: LedgerReading, *, now: datetime) -> BudgetOutcome:
    """The budget's status for `reading`, taken at `now`, with the alerts newly due.

    Without totals (no ledger, Redis unreachable, an unreadable budget) only the `Current`
    condition changes: the figures keep describing the period last read, as `periodStart` says.
    """
    generation = meta_of(parsed.body).get("generation")
    previous = previous_status(FeatureBudgetStatus, parsed.body.get("status"))
    budget, totals = parsed.budget, reading.totals
    if budget is None or totals is None:
        reason, message = (
            ("Invalid", "; ".join(str(p) for p in parsed.problems))
            if budget is None
            else (reading.reason, reading.message)
        )
        current = condition(
            previous.conditions,
            type_=CURRENT,
            status="False",
            reason=reason,
            message=message,
            now=now,
            generation=generation,
        )
        return BudgetOutcome(
            previous.model_copy(
                update={
                    "conditions": with_condition(previous.conditions, current),
                    "observed_generation": generation,
                }
            )
        )
    spec = budget.spec
    window = window_of(spec.period, now)
    spent = totals.total.cost
    used = percent_used(spent, spec.limit_usd)
    kept = [a for a in previous.alerts_sent if a.period_start == timestamp(window.start)]
    due = _due(spec, kept, used, window, now)
    current = condition(
        previous.conditions,
        type_=CURRENT,
        status="True",
        reason=reading.reason,
        message=reading.message,
        now=now,
        generation=generation,
    )
    status = FeatureBudgetStatus(
        conditions=with_condition(previous.conditions, current),
        observed_generation=generation,
        period_start=timestamp(window.start),
        period_end=timestamp(window.end),
        spent_usd=format_usd(spent),
        remaining_usd=format_usd(max(spec.limit_usd - spent, Decimal(0))),
        percent_used=_percent(used),
        state=budget_state(spent, spec),
        by_model=_by_model(totals),
        alerts_sent=[*kept, *due],
        last_updated=timestamp(now),
    )
    return BudgetOutcome(status, due)


def _same(a: AlertSent, b: AlertSent) -> bool:
    return (a.period_start, a.percent, a.action) == (b.period_start, b.percent, b.action)


def with_alert(status: FeatureBudgetStatus, alert: AlertSent) -> FeatureBudgetStatus:
    """`status` with `alert` in place of its earlier record."""
    alerts = [alert if _same(a, alert) else a for a in status.alerts_sent]
    return status.model_copy(update={"alerts_sent": alerts})


def event_delivered(alert: AlertSent) -> AlertSent:
    return alert.model_copy(update={"event": "Sent"})


def webhook_delivered(alert: AlertSent, error: str | None) -> AlertSent:
    """The alert after one webhook attempt; `error` is None when it was accepted."""
    attempts = alert.attempts + 1
    if error is None:
        return alert.model_copy(update={"webhook": "Sent", "attempts": attempts, "message": None})
    state = "Failed" if attempts >= MAX_WEBHOOK_ATTEMPTS else "Pending"
    return alert.model_copy(update={"webhook": state, "attempts": attempts, "message": error})


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def alert_message(parsed: ParsedBudget, alert: AlertSent, status: FeatureBudgetStatus) -> str:
    """What an alert says, in the Event and the webhook POST."""
    assert parsed.budget is not None
    spec = parsed.budget.spec
    who = f"feature {spec.feature}" + (f" (team {spec.team})" if spec.team else "")
    spent = (
        f" has spent ${status.spent_usd} of ${format_usd(spec.limit_usd)}"
        + (f" ({status.percent_used:g}%)" if status.percent_used is not None else "")
        if status.spent_usd is not None
        else ""
    )
    threshold = next(
        (t for t in spec.thresholds if (t.percent, t.action) == (alert.percent, alert.action)),
        None,
    )
    effect = {
        "alert": "alert",
        "downgrade": "requests are downgraded"
        + (f" to {threshold.downgrade_to}" if threshold and threshold.downgrade_to else ""),
        "block": "requests are refused until the period ends",
    }[alert.action]
    return (
        f"FeatureBudget {parsed.namespace}/{parsed.name}: {who}{spent} in the {spec.period} "
        f"period from {alert.period_start}; the {_number(alert.percent)}% threshold is reached: "
        f"{effect}."
    )


def event_name(parsed: ParsedBudget, alert: AlertSent) -> str:
    """The Event's name: the same for the same budget (by uid), period and threshold."""
    uid = meta_of(parsed.body).get("uid", "")
    key = f"{uid}/{alert.period_start}/{_number(alert.percent)}/{alert.action}"
    return f"{parsed.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def alert_event(
    parsed: ParsedBudget, alert: AlertSent, message: str, now: datetime
) -> dict[str, Any]:
    """The core/v1 Event an alert is reported as, on the FeatureBudget."""
    meta = meta_of(parsed.body)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(parsed, alert), "namespace": parsed.namespace},
        "involvedObject": {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND_FEATURE_BUDGET,
            "name": parsed.name,
            "namespace": parsed.namespace,
            "uid": meta.get("uid"),
        },
        "reason": EVENT_REASON,
        "message": message,
        "type": "Warning",
        "source": {"component": "switchboard-operator"},
        "reportingComponent": "switchboard.dev/operator",
        "reportingInstance": "switchboard-operator",
        "firstTimestamp": timestamp(now),
        "lastTimestamp": timestamp(now),
        "count": 1,
    }
