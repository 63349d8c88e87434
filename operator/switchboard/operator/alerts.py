"""Edge: delivers the budget alerts a status has recorded: Events first, then webhook POSTs.

Events go first because they are idempotent (named per budget, period and threshold) and share
the API server with the status write that follows: if the API server fails, this raises before
any webhook is posted, and the next timer run starts over without a duplicate. A webhook
failure never raises; it is counted in the alert (`attempts`, `message`) and retried on the
next run until `MAX_WEBHOOK_ATTEMPTS`.
"""

from __future__ import annotations

from datetime import datetime

from switchboard.api.v1alpha1 import AlertSent, FeatureBudgetStatus
from switchboard.operator import budgets
from switchboard.operator.budgets import BudgetOutcome, ParsedBudget
from switchboard.operator.memo import Memo


async def _event(
    parsed: ParsedBudget, alert: AlertSent, message: str, memo: Memo, now: datetime
) -> AlertSent:
    if alert.event != "Pending":
        return alert
    if await memo.kube.create_event(budgets.alert_event(parsed, alert, message, now)):
        memo.metrics.alert_sent("event")
    return budgets.event_delivered(alert)


async def _webhook_url(parsed: ParsedBudget, memo: Memo) -> tuple[str | None, str]:
    """(URL, why there is none)."""
    assert parsed.budget is not None
    ref = parsed.budget.spec.alerts.webhook_secret_ref
    if ref is None:
        return None, "no webhookSecretRef"
    url = await memo.kube.secret_value(parsed.namespace, ref.name, ref.key)
    return url, f"Secret {ref.name} has no key {ref.key}"


async def _post(url: str | None, missing: str, message: str, memo: Memo) -> str | None:
    error = missing if url is None else await memo.slack.post(url, message)
    if error is None:
        memo.metrics.alert_sent("webhook")
    else:
        memo.metrics.alert_failed("webhook")
    return error


async def deliver(
    parsed: ParsedBudget, outcome: BudgetOutcome, memo: Memo, now: datetime
) -> FeatureBudgetStatus:
    """Deliver every pending channel of every recorded alert; the status saying what was sent."""
    status = outcome.status
    pending = [(a, budgets.alert_message(parsed, a, status)) for a in outcome.pending]
    evented = [(await _event(parsed, a, message, memo, now), message) for a, message in pending]
    url, missing = None, ""
    if any(a.webhook == "Pending" for a, _ in evented):
        url, missing = await _webhook_url(parsed, memo)
    for alert, message in evented:
        if alert.webhook == "Pending":
            alert = budgets.webhook_delivered(alert, await _post(url, missing, message, memo))
        status = budgets.with_alert(status, alert)
    return status
