"""Edge: one request from the application to an answer, composing the pure core.

intake (body, validation, attribution, route) -> cache -> budget -> plan (strategy,
residency, breaker) -> each step of the plan in order: the tries of one target (`attempts`),
failover to the next on an error, and for `cascade` a quality gate on every step but the last
-> the answer (`answers`) or the relayed stream (`stream_relay`); cost, ledger and metrics are
recorded by `accounting` as each paid attempt is priced, and the request metrics and spans once
the answer is out (`accounting.finished`). Every decision is made by a pure function;
this module gathers inputs and applies results.
"""

from __future__ import annotations

import time
from typing import Literal

from aiohttp import web

from switchboard.cache.keys import cache_key, cacheable
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint
from switchboard.routing.quality import quality_failure
from switchboard.routing.strategies import expected_cost, plan_attempts
from switchboard.sidecar.accounting import charge, escalated, estimated_usage, finished, release
from switchboard.sidecar.answers import (
    all_failed,
    budget_blocked,
    cached_answer,
    no_target,
    passthrough_error,
    upstream_answer,
)
from switchboard.sidecar.attempts import try_target
from switchboard.sidecar.call import Answer, Call
from switchboard.sidecar.deps import Clock, Deps
from switchboard.sidecar.intake import incoming_call, read_body
from switchboard.sidecar.stream_relay import buffer_stream, pipe_stream, replay_stream

# Clock lives in `deps`; it stays importable from here, where tests have always found it.
__all__ = ["Clock", "run"]


async def run(request: web.Request, endpoint: Endpoint, deps: Deps) -> web.StreamResponse:
    """Answer one OpenAI API request."""
    started = time.perf_counter()
    start_ns = time.time_ns()
    runtime = deps.holder.current
    spec = runtime.config.spec
    raw = await read_body(request, spec.limits.max_body_bytes)
    if not isinstance(raw, bytes):
        return raw
    call = incoming_call(endpoint, raw, request.headers, runtime, deps.identity, started, start_ns)
    if not isinstance(call, Call):
        return call
    try:
        response = await _serve(request, call, deps)
    except Exception as exc:
        call.exception = exc
        raise
    finally:
        release(call, deps)
        deps.soon(finished, call, deps, time.perf_counter() - started, time.time_ns())
    call.status = response.status
    return response


async def _serve(request: web.Request, call: Call, deps: Deps) -> web.StreamResponse:
    route = call.route
    cache_state: Literal["hit", "miss", "bypass"] = "bypass"
    key = ""
    if (
        route.spec.cache.mode == "exact"
        and cacheable(call.body)
        and "no-cache" not in request.headers.get("Cache-Control", "")
    ):
        key = cache_key(route.name, call.endpoint + (".stream" if call.stream else ""), call.body)
        hit = deps.cache.get(route.name, key)
        if hit is not None:
            return await cached_answer(request, call, deps, hit)
        cache_state = "miss"
    call.cache = cache_state
    estimate = max(expected_cost(t.model, call.facts) for t in (*route.targets, *route.fallback))
    call.budget = await deps.budgets.check(call.runtime, call.facts.feature, estimate)
    if call.budget.action == "block":
        return budget_blocked(call, call.budget, deps)
    override = None
    if call.budget.action == "downgrade" and call.budget.downgrade_to:
        target = call.budget.downgrade_to
        override = call.runtime.models.get(target)
        if override is None:
            route = call.route = call.runtime.routes_by_name[target]
    plan = plan_attempts(
        route,
        call.facts,
        allowed_regions=call.runtime.allowed_regions(call.facts.region),
        health=deps.targets.health,
        latency=deps.targets.latency,
        now=deps.clock.monotonic(),
        rng=deps.rng,
        override_model=override,
    )
    if not plan.steps:
        return no_target(call, plan, deps)
    cascade = route.spec.strategy == "cascade"
    wants_json = oai.wants_json(call.body)
    for index, step in enumerate(plan.steps):
        model = step.model
        last = index == len(plan.steps) - 1
        outcome = await try_target(call, model, deps)
        if outcome is None:
            continue
        if isinstance(outcome, oai.UpstreamError):
            call.failures.append((model, outcome))
            if outcome.kind == "client":
                return passthrough_error(call, model, outcome, deps)
            if not last:
                deps.metrics.failovers.labels(
                    call.facts.feature, route.name, model.provider.name, model.name, outcome.kind
                ).inc()
            continue
        gate = route.spec.quality_gate if cascade and not last else None
        if isinstance(outcome, Answer):
            await charge(call, model, outcome.result.usage or estimated_usage(call, outcome), deps)
            reason = gate and quality_failure(outcome.result.text, gate, wants_json)
            if reason:
                escalated(call, model, reason, deps)
                continue
            return upstream_answer(call, model, outcome, cache_state, key, deps)
        if gate is not None:
            buffered = await buffer_stream(call, model, outcome, deps)
            if buffered is None:
                continue
            tally, data = buffered
            reason = quality_failure(tally.text, gate, wants_json)
            if reason:
                escalated(call, model, reason, deps)
                continue
            return await replay_stream(request, call, model, tally, data, deps)
        return await pipe_stream(request, call, model, outcome, cache_state, key, deps)
    if call.blocked is not None:
        return budget_blocked(call, call.blocked, deps)
    return all_failed(call, deps)
