"""Edge: the whole-body answers a client gets — OpenAI-style errors, refusals, upstream
answers and cache hits (a streamed request's cache hit is replayed as one SSE body).

Every answer after intake is counted once in the request metrics and carries the
`x-switchboard-*` headers that apply; the refusals' statuses, messages and Retry-After come
from the pure `refusals` module.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from switchboard.api import names
from switchboard.budget.decide import BudgetDecision
from switchboard.config.runtime import ModelRuntime
from switchboard.pricing.cost import ZERO
from switchboard.providers import openai_compat as oai
from switchboard.routing.strategies import Plan
from switchboard.sidecar.accounting import answered, capture_output, count, response_headers
from switchboard.sidecar.call import Answer, Call
from switchboard.sidecar.deps import Deps
from switchboard.sidecar.refusals import (
    budget_refusal_body,
    budget_retry_after,
    failure_refusal,
    no_target_refusal,
    rejection_refusal,
)
from switchboard.sidecar.responsecache import CachedResponse
from switchboard.sidecar.stream_relay import stream_response
from switchboard.sidecar.streaming import stream_tail


def error_response(
    status: int,
    message: str,
    type_: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An OpenAI-style error."""
    return web.Response(
        status=status,
        body=oai.error_body(message, type_, code, param),
        content_type="application/json",
        headers=headers,
    )


def upstream_answer(
    call: Call, model: ModelRuntime, answer: Answer, cache_state: str, key: str, deps: Deps
) -> web.Response:
    """A non-streamed upstream answer, stored in the cache on a miss."""
    if cache_state == "miss":
        ttl = call.route.spec.cache.ttl_seconds
        entry = CachedResponse(
            answer.raw,
            None,
            model.provider.name,
            model.name,
            call.spent,
            deps.clock.monotonic() + ttl,
        )
        deps.cache.put(call.route.name, key, entry, call.route.spec.cache.max_entries)
    result = answer.result
    answered(call, model.provider.name, result.usage, result.response_model)
    capture_output(call, result.text, result.finish_reason)
    count(call, model.provider.name, model.name, 200)
    headers = response_headers(call, model.provider.name, model.name, cache_state, call.spent, deps)
    return web.Response(body=answer.raw, content_type="application/json", headers=headers)


async def cached_answer(
    request: web.Request, call: Call, deps: Deps, hit: CachedResponse
) -> web.StreamResponse:
    """A cache hit, at no cost; a streamed request gets the stored events as one body."""
    feature, route = call.facts.feature, call.route.name
    deps.metrics.cache_hits.labels(feature, route).inc()
    deps.metrics.cache_saved.labels(feature, route).inc(float(hit.cost))
    call.cache = "hit"
    count(call, hit.provider, hit.model, 200)
    headers = response_headers(call, hit.provider, hit.model, "hit", ZERO, deps)
    if not call.stream:
        return web.Response(body=hit.body, content_type="application/json", headers=headers)
    response = stream_response(headers)
    await response.prepare(request)
    await response.write_eof(hit.body + stream_tail(hit.usage_event, call.body, ZERO))
    return response


def no_target(call: Call, plan: Plan, deps: Deps) -> web.Response:
    """The route has no target to try (residency, breakers, rests)."""
    refusal = no_target_refusal(call.route.name, call.facts.region, plan.wait_seconds, plan.skipped)
    retry_after = refusal.retry_after
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    count(call, "", "", refusal.status)
    return error_response(
        refusal.status, refusal.message, refusal.type_, code=refusal.code, headers=headers
    )


def budget_blocked(call: Call, decision: BudgetDecision, deps: Deps) -> web.Response:
    """429 naming the budget, its limit and when its period ends (Retry-After)."""
    count(call, "", "", 429)
    headers = {
        "Retry-After": str(budget_retry_after(decision, deps.clock.now())),
        names.RESPONSE_BUDGET: "blocked",
        names.RESPONSE_ROUTE: call.route.name,
    }
    body = orjson.dumps(budget_refusal_body(decision, call.facts.feature))
    return web.Response(status=429, body=body, content_type="application/json", headers=headers)


def passthrough_error(
    call: Call, model: ModelRuntime, error: oai.UpstreamError, deps: Deps
) -> web.Response:
    """The provider rejected the request itself: its 4xx, without trying other targets."""
    refusal = rejection_refusal(model.provider.name, error)
    count(call, model.provider.name, model.name, refusal.status)
    return error_response(
        refusal.status,
        refusal.message,
        refusal.type_,
        code=refusal.code,
        headers=response_headers(call, model.provider.name, model.name, "bypass", call.spent, deps),
    )


def all_failed(call: Call, deps: Deps) -> web.Response:
    """Every attempt failed; the status says how (rate limits, credentials, timeouts)."""
    model, _ = call.failures[-1]
    headers = response_headers(call, model.provider.name, model.name, "bypass", call.spent, deps)
    refusal = failure_refusal(call.failures)
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    count(call, model.provider.name, model.name, refusal.status)
    return error_response(
        refusal.status, refusal.message, refusal.type_, code=refusal.code, headers=headers
    )
