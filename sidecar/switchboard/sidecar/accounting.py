"""Edge: what the sidecar records about a request — cost, ledger, budgets, metrics and spans.

Owns charging a paid attempt (price it, add it to the request's total, the budgets and the
ledger, count its tokens and cost), releasing an attempt's budget hold, the request counter,
the `x-switchboard-*` response headers (with the overhead histogram) and the notes of the answer
(usage, content) for the request's span. The prices and decisions come from the core; this
module applies them.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from decimal import Decimal

from switchboard.api import names
from switchboard.config.runtime import ModelRuntime
from switchboard.ledger.base import SpendRecord
from switchboard.ledger.ids import new_record_id
from switchboard.pricing.cost import ZERO, Usage, cost_of, format_usd
from switchboard.sidecar.call import Answer, Call
from switchboard.sidecar.deps import Deps
from switchboard.sidecar.request_spans import record_spans

BUDGET_HEADER = {"alert": "warning", "downgrade": "downgraded"}


async def charge(
    call: Call, model: ModelRuntime, usage: Usage, deps: Deps, *, estimated: bool = False
) -> Decimal:
    """Price one paid attempt and record it: the request's total and the ledger at once, the
    metrics and the budgets at the loop's next turn, so that an answer written in this turn
    (every plain answer) leaves before them."""
    cost = cost_of(usage, model.price)
    call.spent += cost
    at = deps.clock.now()
    # The attempt's hold goes with the booking: until the spend is counted, the hold is, so
    # no budget check in between sees neither.
    held, call.held = call.held, ZERO
    deps.soon(_book, call, model, usage, cost, at, held, deps)
    await deps.ledger.record(
        SpendRecord(
            id=new_record_id(),
            at=at,
            namespace=deps.identity.namespace,
            feature=call.facts.feature,
            team=call.team,
            provider=model.provider.name,
            model=model.name,
            route=call.route.name,
            usage=usage,
            cost=cost,
            estimated=estimated,
        )
    )
    return cost


def _book(
    call: Call,
    model: ModelRuntime,
    usage: Usage,
    cost: Decimal,
    at: datetime,
    held: Decimal,
    deps: Deps,
) -> None:
    deps.metrics.record_call(call.labels(model), usage, cost)
    deps.budgets.spent(call.runtime, call.facts.feature, cost, at)
    deps.budgets.release(call.runtime, call.facts.feature, held)


def release(call: Call, deps: Deps) -> None:
    """Give back the budget the attempt in flight holds (nothing when it holds none)."""
    if call.held:
        deps.budgets.release(call.runtime, call.facts.feature, call.held)
        call.held = ZERO


def estimated_usage(call: Call, answer: Answer) -> Usage:
    """Usage of an answer that reported none: the prompt estimate, 4 characters a token out."""
    output = math.ceil(len(answer.result.text) / 4)
    return Usage(input_tokens=call.facts.prompt_tokens, output_tokens=output)


def escalated(call: Call, model: ModelRuntime, reason: str, deps: Deps) -> None:
    """A cascade step failed its quality gate: count a failover and note it for the span."""
    deps.metrics.failovers.labels(
        call.facts.feature, call.route.name, model.provider.name, model.name, "quality"
    ).inc()
    event = {"model": model.name, "reason": reason}
    call.events.append(("cascade.escalate", event, time.time_ns()))


def _overhead_ms(call: Call) -> float:
    return max(0.0, (time.perf_counter() - call.started - call.upstream_seconds) * 1000)


def response_headers(
    call: Call, provider: str, model: str, cache: str, cost: Decimal | None, deps: Deps
) -> dict[str, str]:
    """The `x-switchboard-*` headers; notes the sidecar's overhead so far (for `finished`)."""
    overhead = _overhead_ms(call)
    call.overhead = overhead / 1000
    headers = {
        names.RESPONSE_PROVIDER: provider,
        names.RESPONSE_MODEL: model,
        names.RESPONSE_ROUTE: call.route.name,
        names.RESPONSE_CACHE: cache,
        names.RESPONSE_ATTEMPTS: str(call.attempts),
        names.RESPONSE_OVERHEAD: f"{overhead:.3f}",
    }
    if cost is not None:
        headers[names.RESPONSE_COST] = format_usd(cost)
    if call.budget.action in BUDGET_HEADER:
        headers[names.RESPONSE_BUDGET] = BUDGET_HEADER[call.budget.action]
    return headers


def count(call: Call, provider: str, model: str, status: int) -> None:
    """Count the request once, with the status the client got (in `finished`)."""
    call.counted = (provider, model, status)


def finished(call: Call, deps: Deps, seconds: float, end_ns: int) -> None:
    """What is recorded of a request once its answer is out (run at the loop's turn after
    `pipeline.run` returned it): the request counter, the overhead and duration histograms, and
    its spans when the sidecar next waits for a provider (`Deps.when_idle`)."""
    route = call.route.name
    metrics = deps.metrics
    if call.counted is not None:
        provider, model, status = call.counted
        metrics.requests.labels(
            call.facts.feature, call.team, provider, model, route, str(status)
        ).inc()
    if call.overhead is not None:
        metrics.overhead.labels(route).observe(call.overhead)
    if call.status is not None:
        metrics.duration.labels(call.facts.feature, route, str(call.status)).observe(seconds)
    if deps.tracer.records:
        deps.when_idle(record_spans, call, deps.tracer, end_ns)


def answered(
    call: Call, provider: str | None, usage: Usage | None, response_model: str | None
) -> None:
    """Note the answer the client gets, for the request's span."""
    call.answered_by = provider
    call.usage = usage
    call.response_model = response_model


def capture_output(call: Call, text: str, finish_reason: str | None) -> None:
    """Keep the answer for the request's span, only when the policy opts in (captureContent)."""
    if call.endpoint == "chat" and call.runtime.config.spec.telemetry.capture_content:
        call.completion = (text, finish_reason)
