"""Edge: one request from the application to an answer, composing the pure core.

attribute -> match route -> cache -> plan (strategy, residency, breaker) -> upstream with
retries and fallbacks (cascade: quality gate) -> usage -> cost -> ledger, metrics, span.
Every decision is made by a pure function; this module gathers inputs and applies results.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import aiohttp
import orjson
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from switchboard.api import names
from switchboard.api.v1alpha1 import Retry
from switchboard.budget.decide import ALLOW, BudgetDecision
from switchboard.cache.keys import cache_key, cacheable
from switchboard.config.runtime import ModelRuntime, RouteRuntime, RuntimeConfig
from switchboard.ledger.base import SpendLedger, SpendRecord
from switchboard.pricing.cost import ZERO, Usage, cost_of, format_usd
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint, client_wants_usage, request_problem
from switchboard.providers.sse import SSEEvent, SSEParser
from switchboard.routing.breaker import (
    TargetHealth,
    after_failure,
    after_rate_limit,
    after_success,
    breaker_state,
    ewma,
)
from switchboard.routing.match import RequestFacts, match_route
from switchboard.routing.quality import quality_failure
from switchboard.routing.strategies import Plan, expected_cost, plan_attempts
from switchboard.sidecar.attribution import Identity, request_facts
from switchboard.sidecar.budgets import BudgetTracker
from switchboard.sidecar.responsecache import CachedResponse, ResponseCache
from switchboard.sidecar.streaming import (
    DONE_EVENT,
    StreamTally,
    cost_comment,
    error_event,
    relay,
)
from switchboard.sidecar.upstream import Upstream, error_of_exception
from switchboard.telemetry import spans
from switchboard.telemetry.metrics import BREAKER_STATE_VALUE, Metrics
from switchboard.telemetry.redact import redact

BUDGET_HEADER = {"alert": "warning", "downgrade": "downgraded"}
PATHS: Mapping[Endpoint, str] = {"chat": "/chat/completions", "embeddings": "/embeddings"}
UPSTREAM_FAILURES = (TimeoutError, aiohttp.ClientError, OSError)


class Clock:
    """Monotonic seconds for timers, UTC wall time for records; tests pass their own."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class RuntimeHolder:
    """The config in force; a request reads it once and keeps that snapshot to the end."""

    def __init__(self, current: RuntimeConfig) -> None:
        self.current = current


class TargetBook:
    """Health and latency of every target (by model name); kept across config reloads."""

    def __init__(self, metrics: Metrics) -> None:
        self.health: dict[str, TargetHealth] = {}
        self.latency: dict[str, float] = {}
        self._metrics = metrics

    def _set(self, model: ModelRuntime, health: TargetHealth, now: float) -> None:
        self.health[model.name] = health
        state = BREAKER_STATE_VALUE[breaker_state(health, now)]
        self._metrics.breaker_state.labels(model.provider.name, model.name).set(state)

    def succeeded(self, model: ModelRuntime, seconds: float, now: float) -> None:
        self.latency[model.name] = ewma(self.latency.get(model.name), seconds)
        old = self.health.get(model.name)
        if old is not None and old != TargetHealth(resting_until=old.resting_until):
            self._set(model, after_success(old), now)

    def failed(
        self, model: ModelRuntime, error: oai.UpstreamError, runtime: RuntimeConfig, now: float
    ) -> None:
        old = self.health.get(model.name, TargetHealth())
        if error.kind == "rate_limited":
            new = after_rate_limit(old, now, error.retry_after)
        else:
            new = after_failure(old, now, runtime.config.spec.circuit_breaker)
        self._set(model, new, now)


@dataclass
class Deps:
    """Everything a request needs besides itself."""

    holder: RuntimeHolder
    identity: Identity
    upstream: Upstream
    metrics: Metrics
    tracer: trace.Tracer
    ledger: SpendLedger
    cache: ResponseCache
    targets: TargetBook
    budgets: BudgetTracker
    clock: Clock
    rng: random.Random


@dataclass
class Call:
    """One request in flight."""

    endpoint: Endpoint
    body: dict[str, object]
    runtime: RuntimeConfig
    facts: RequestFacts
    route: RouteRuntime
    stream: bool
    started: float
    span: trace.Span
    upstream_seconds: float = 0.0
    attempts: int = 0
    spent: Decimal = ZERO
    held: Decimal = ZERO
    budget: BudgetDecision = ALLOW
    blocked: BudgetDecision | None = None
    failures: list[tuple[ModelRuntime, oai.UpstreamError]] = field(default_factory=list)

    @property
    def team(self) -> str:
        return self.facts.team or ""

    def labels(self, model: ModelRuntime) -> tuple[str, str, str, str, str]:
        return (self.facts.feature, self.team, model.provider.name, model.name, self.route.name)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful non-streamed upstream answer."""

    raw: bytes
    result: oai.ChatResult


@dataclass(frozen=True, slots=True)
class OpenStream:
    """An upstream stream whose first event has arrived and nothing has reached the client."""

    response: aiohttp.ClientResponse
    parser: SSEParser
    first: list[SSEEvent]


Outcome = Answer | OpenStream | oai.UpstreamError


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


def backoff_seconds(retry: Retry, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1-based)."""
    step: float = min(retry.max_backoff_ms, retry.backoff_ms * 2 ** (attempt - 1)) / 1000
    return step * (0.5 + rng.random() / 2)


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it exceeds `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def run(request: web.Request, endpoint: Endpoint, deps: Deps) -> web.StreamResponse:
    """Answer one OpenAI API request."""
    started = time.perf_counter()
    runtime = deps.holder.current
    spec = runtime.config.spec
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):
        return error_response(
            415,
            f"Content-Encoding {encoding!r} is not supported; send the JSON body uncompressed",
            "invalid_request_error",
            code="unsupported_content_encoding",
        )
    try:
        raw = await _read_body(request, spec.limits.max_body_bytes)
    except web.RequestPayloadError:  # e.g. broken chunked framing
        return error_response(400, "request body could not be read", "invalid_request_error")
    if raw is None:
        limit = spec.limits.max_body_bytes
        return error_response(
            413,
            f"request body exceeds {limit} bytes",
            "invalid_request_error",
            code="request_too_large",
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(400, "request body is not valid JSON", "invalid_request_error")
    problem = request_problem(endpoint, body)
    if problem is not None:
        return error_response(400, problem.message, "invalid_request_error", param=problem.param)
    facts = request_facts(
        request.headers,
        body["model"],
        deps.identity,
        spec.attribution,
        oai.estimate_prompt_tokens(body),
        oai.requested_max_output_tokens(body, spec.limits.default_max_output_tokens)
        if endpoint == "chat"
        else 0,
    )
    routes = runtime.chat_routes if endpoint == "chat" else runtime.embedding_routes
    route = match_route(routes, facts)
    if route is None:
        offered = ", ".join(runtime.models) or "none"
        return error_response(
            404,
            f"no route matches model {facts.requested_model!r} for feature {facts.feature!r}; "
            f"routes: {', '.join(r.name for r in routes) or 'none'}; models: {offered}",
            "invalid_request_error",
            code="model_not_found",
            param="model",
        )
    stream = endpoint == "chat" and body.get("stream") is True
    operation = "chat" if endpoint == "chat" else "embeddings"
    with deps.tracer.start_as_current_span(
        f"{operation} {facts.requested_model}",
        context=spans.incoming_context(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            spans.OPERATION: operation,
            spans.REQUEST_MODEL: facts.requested_model,
            spans.FEATURE: facts.feature,
            spans.TEAM: facts.team or "",
            spans.ROUTE: route.name,
        },
    ) as span:
        if endpoint == "chat" and spec.telemetry.capture_content:
            span.set_attribute(spans.PROMPT, spans.input_messages(body["messages"]))
        call = Call(endpoint, body, runtime, facts, route, stream, started, span)
        try:
            response = await _serve(request, call, deps)
        finally:
            _release(call, deps)
        span.set_attribute(spans.COST, float(call.spent))
        if response.status >= 400:
            span.set_status(Status(StatusCode.ERROR))
        deps.metrics.duration.labels(facts.feature, route.name, str(response.status)).observe(
            time.perf_counter() - started
        )
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
            return await _serve_cached(request, call, deps, hit)
        cache_state = "miss"
    call.span.set_attribute(spans.CACHE, cache_state)
    estimate = max(expected_cost(t.model, call.facts) for t in (*route.targets, *route.fallback))
    call.budget = await deps.budgets.check(call.runtime, call.facts.feature, estimate)
    if call.budget.action == "block":
        return _budget_blocked(call, call.budget, deps)
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
        return _no_target(call, plan, deps)
    cascade = route.spec.strategy == "cascade"
    wants_json = oai.wants_json(call.body)
    for index, step in enumerate(plan.steps):
        model = step.model
        last = index == len(plan.steps) - 1
        outcome = await _try_target(call, model, deps)
        if outcome is None:
            continue
        if isinstance(outcome, oai.UpstreamError):
            call.failures.append((model, outcome))
            if outcome.kind == "client":
                return _passthrough_error(call, model, outcome, deps)
            if not last:
                deps.metrics.failovers.labels(
                    call.facts.feature, route.name, model.provider.name, model.name, outcome.kind
                ).inc()
            continue
        gate = route.spec.quality_gate if cascade and not last else None
        if isinstance(outcome, Answer):
            await _charge(call, model, outcome.result.usage or _estimate(call, outcome), deps)
            reason = gate and quality_failure(outcome.result.text, gate, wants_json)
            if reason:
                _escalated(call, model, reason, deps)
                continue
            return await _answer(call, model, outcome, cache_state, key, deps)
        if gate is not None:
            buffered = await _buffer_stream(call, model, outcome, deps)
            if buffered is None:
                continue
            tally, data = buffered
            reason = quality_failure(tally.text, gate, wants_json)
            if reason:
                _escalated(call, model, reason, deps)
                continue
            return await _replay_stream(request, call, model, tally, data, deps)
        return await _pipe_stream(request, call, model, outcome, cache_state, key, deps)
    if call.blocked is not None:
        return _budget_blocked(call, call.blocked, deps)
    return _all_failed(call, deps)


def _escalated(call: Call, model: ModelRuntime, reason: str, deps: Deps) -> None:
    deps.metrics.failovers.labels(
        call.facts.feature, call.route.name, model.provider.name, model.name, "quality"
    ).inc()
    call.span.add_event("cascade.escalate", {"model": model.name, "reason": reason})


def _estimate(call: Call, answer: Answer) -> Usage:
    output = math.ceil(len(answer.result.text) / 4)
    return Usage(input_tokens=call.facts.prompt_tokens, output_tokens=output)


async def _try_target(call: Call, model: ModelRuntime, deps: Deps) -> Outcome | None:
    """Up to `retry.attempts` tries of one target; a 429 or an open breaker moves on at once.

    None: the budget does not allow another paid attempt at this model.
    """
    retry = call.route.spec.retry
    provider = model.provider
    error: oai.UpstreamError | None = None
    if provider.key_env is not None and provider.api_key is None:
        error = oai.UpstreamError(
            "auth",
            None,
            False,
            None,
            f"provider {provider.name!r} has no API key (env {provider.key_env} is not set)",
        )
        deps.metrics.upstream_errors.labels(provider.name, model.name, error.kind).inc()
        return error
    for attempt in range(1, retry.attempts + 1):
        if attempt > 1:
            if (
                breaker_state(
                    deps.targets.health.get(model.name, TargetHealth()), deps.clock.monotonic()
                )
                == "open"
            ):
                break
            delay = backoff_seconds(retry, attempt - 1, deps.rng)
            call.upstream_seconds += delay
            await asyncio.sleep(delay)
        cap = expected_cost(model, call.facts)
        verdict = await deps.budgets.admit(call.runtime, call.facts.feature, cap)
        if verdict.action == "block":
            call.blocked = verdict
            return error
        call.held = cap
        call.attempts += 1
        outcome = await _attempt(call, model, deps)
        if not isinstance(outcome, oai.UpstreamError):
            return outcome
        _release(call, deps)
        error = outcome
        deps.metrics.upstream_errors.labels(provider.name, model.name, error.kind).inc()
        deps.targets.failed(model, error, call.runtime, deps.clock.monotonic())
        if not error.retryable or error.kind == "rate_limited":
            break
    return error


def _release(call: Call, deps: Deps) -> None:
    deps.budgets.release(call.runtime, call.facts.feature, call.held)
    call.held = ZERO


async def _attempt(call: Call, model: ModelRuntime, deps: Deps) -> Outcome:
    """One upstream request, in a child span."""
    provider = model.provider
    if call.endpoint == "chat":
        payload = oai.build_chat_body(call.body, model.upstream_model, stream=call.stream)
    else:
        payload = oai.build_embeddings_body(call.body, model.upstream_model)
    with deps.tracer.start_as_current_span(
        f"{'chat' if call.endpoint == 'chat' else 'embeddings'} {model.upstream_model}",
        kind=SpanKind.CLIENT,
        attributes={
            spans.OPERATION: call.endpoint if call.endpoint == "chat" else "embeddings",
            spans.PROVIDER: provider.name,
            spans.REQUEST_MODEL: model.upstream_model,
            spans.ATTEMPT: call.attempts,
            spans.ROUTE: call.route.name,
        },
    ) as span:
        begun = time.perf_counter()
        outcome = await _exchange(call, model, payload, deps.upstream)
        if isinstance(outcome, oai.UpstreamError) and provider.api_key is not None:
            # Providers quote the key they refused; a key of any shape stays out of spans/answers.
            message = redact(outcome.message, [provider.api_key.value])
            outcome = replace(outcome, message=message)
        elapsed = time.perf_counter() - begun
        call.upstream_seconds += elapsed
        if isinstance(outcome, oai.UpstreamError):
            span.set_attribute(spans.ERROR_KIND, outcome.kind)
            span.set_status(Status(StatusCode.ERROR, outcome.message))
        else:
            deps.targets.succeeded(model, elapsed, deps.clock.monotonic())
            if isinstance(outcome, Answer):
                _usage_attributes(span, outcome.result.usage, outcome.result.response_model)
        return outcome


def _usage_attributes(span: trace.Span, usage: Usage | None, response_model: str | None) -> None:
    if response_model:
        span.set_attribute(spans.RESPONSE_MODEL, response_model)
    if usage is not None:
        span.set_attribute(spans.INPUT_TOKENS, usage.input_tokens)
        span.set_attribute(spans.OUTPUT_TOKENS, usage.output_tokens)


def _capture_output(call: Call, text: str, finish_reason: str | None) -> None:
    """The answer in the request's span, only when the policy opts in (captureContent)."""
    if call.endpoint == "chat" and call.runtime.config.spec.telemetry.capture_content:
        call.span.set_attribute(spans.COMPLETION, spans.output_messages(text, finish_reason))


async def _exchange(call: Call, model: ModelRuntime, payload: bytes, upstream: Upstream) -> Outcome:
    provider = model.provider
    response: aiohttp.ClientResponse | None = None
    try:
        if call.stream:
            parser = SSEParser()
            async with asyncio.timeout(provider.first_byte_timeout):
                response = await upstream.post(provider, PATHS[call.endpoint], payload, stream=True)
                if response.status != 200:
                    data = await response.read()
                    return oai.classify_error(response.status, response.headers, data, time.time())
                try:
                    first = await _first_events(response, parser)
                except oai.UpstreamProtocolError as exc:
                    return oai.UpstreamError("bad_response", 200, True, None, str(exc)[:200])
            if not first:
                return oai.UpstreamError("connect", 200, True, None, "stream ended before data")
            opened = OpenStream(response, parser, first)
            response = None  # ownership passes to the caller
            return opened
        async with asyncio.timeout(provider.timeout):
            async with asyncio.timeout(provider.first_byte_timeout):
                response = await upstream.post(
                    provider, PATHS[call.endpoint], payload, stream=False
                )
            data = await response.read()
        if response.status != 200:
            return oai.classify_error(response.status, response.headers, data, time.time())
        parse = (
            oai.parse_chat_response if call.endpoint == "chat" else oai.parse_embeddings_response
        )
        try:
            return Answer(data, parse(data))
        except oai.UpstreamProtocolError as exc:
            return oai.UpstreamError("bad_response", 200, True, None, str(exc)[:200])
    except UPSTREAM_FAILURES as exc:
        return error_of_exception(exc)
    finally:
        if response is not None:
            response.release()


async def _first_events(response: aiohttp.ClientResponse, parser: SSEParser) -> list[SSEEvent]:
    """Read until at least one data event arrived; [] when the stream ended first."""
    events: list[SSEEvent] = []
    while not any(e.data is not None for e in events):
        chunk = await response.content.readany()
        if not chunk:
            return []
        events += parser.feed(chunk)
    for event in events:
        if event.data is not None and event.data != b"[DONE]":
            oai.parse_stream_event(event.data)  # bad JSON before the first byte: fail over
    return events


async def _charge(
    call: Call, model: ModelRuntime, usage: Usage, deps: Deps, *, estimated: bool = False
) -> Decimal:
    """Price one paid attempt and record it: metrics, span total and the ledger."""
    cost = cost_of(usage, model.price)
    call.spent += cost
    at = deps.clock.now()
    deps.metrics.record_call(call.labels(model), usage, cost)
    deps.budgets.spent(call.runtime, call.facts.feature, cost, at)
    _release(call, deps)
    await deps.ledger.record(
        SpendRecord(
            id=uuid.uuid4().hex,
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


def _overhead_ms(call: Call) -> float:
    return max(0.0, (time.perf_counter() - call.started - call.upstream_seconds) * 1000)


def _headers(
    call: Call, provider: str, model: str, cache: str, cost: Decimal | None, deps: Deps
) -> dict[str, str]:
    overhead = _overhead_ms(call)
    deps.metrics.overhead.labels(call.route.name).observe(overhead / 1000)
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


def _count(call: Call, provider: str, model: str, status: int, deps: Deps) -> None:
    deps.metrics.requests.labels(
        call.facts.feature, call.team, provider, model, call.route.name, str(status)
    ).inc()


async def _answer(
    call: Call, model: ModelRuntime, answer: Answer, cache_state: str, key: str, deps: Deps
) -> web.Response:
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
    _usage_attributes(call.span, answer.result.usage, answer.result.response_model)
    _capture_output(call, answer.result.text, answer.result.finish_reason)
    call.span.set_attribute(spans.PROVIDER, model.provider.name)
    _count(call, model.provider.name, model.name, 200, deps)
    headers = _headers(call, model.provider.name, model.name, cache_state, call.spent, deps)
    return web.Response(body=answer.raw, content_type="application/json", headers=headers)


async def _serve_cached(
    request: web.Request, call: Call, deps: Deps, hit: CachedResponse
) -> web.StreamResponse:
    feature, route = call.facts.feature, call.route.name
    deps.metrics.cache_hits.labels(feature, route).inc()
    deps.metrics.cache_saved.labels(feature, route).inc(float(hit.cost))
    call.span.set_attribute(spans.CACHE, "hit")
    _count(call, hit.provider, hit.model, 200, deps)
    headers = _headers(call, hit.provider, hit.model, "hit", ZERO, deps)
    if not call.stream:
        return web.Response(body=hit.body, content_type="application/json", headers=headers)
    response = _stream_response(headers)
    await response.prepare(request)
    tail = hit.usage_event if hit.usage_event and client_wants_usage(call.body) else b""
    await response.write(hit.body + tail + cost_comment(ZERO) + DONE_EVENT)
    await response.write_eof()
    return response


def _stream_response(headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_type = "text/event-stream"
    response.headers["Cache-Control"] = "no-cache"
    return response


def _no_target(call: Call, plan: Plan, deps: Deps) -> web.Response:
    route = call.route.name
    if plan.wait_seconds is None:
        region = call.facts.region
        _count(call, "", "", 403, deps)
        return error_response(
            403,
            f"route {route!r} has no target that requests from region {region!r} may reach "
            "under the policy's dataResidency",
            "data_residency_error",
            code="no_allowed_target",
        )
    wait = max(1, math.ceil(plan.wait_seconds))
    headers = {"Retry-After": str(wait)}
    if all(s.reason in ("resting", "residency") for s in plan.skipped):
        # Every reachable target rests after a 429: the same answer as when they all said 429.
        _count(call, "", "", 429, deps)
        return error_response(
            429,
            f"every target of route {route!r} is rate limited; retry in {wait}s",
            "rate_limit_error",
            code="upstream_rate_limited",
            headers=headers,
        )
    _count(call, "", "", 503, deps)
    return error_response(
        503,
        f"every target of route {route!r} is unavailable (circuit open or rate limited); "
        f"retry in {wait}s",
        "service_unavailable",
        code="no_healthy_target",
        headers=headers,
    )


def _budget_blocked(call: Call, decision: BudgetDecision, deps: Deps) -> web.Response:
    """429 naming the budget, its limit and when its period ends (Retry-After)."""
    _count(call, "", "", 429, deps)
    end = decision.period_end
    wait = 60 if end is None else max(1, math.ceil((end - deps.clock.now()).total_seconds()))
    limit = format_usd(decision.limit) if decision.limit is not None else "?"
    message = (
        f"feature {call.facts.feature!r} reached {decision.percent}% of budget "
        f"{decision.budget!r} ({limit} USD per {decision.period} period); "
        f"the period ends {end.isoformat() if end else 'later'}"
    )
    payload = {
        "error": {
            "message": message,
            "type": "budget_exceeded",
            "param": None,
            "code": "budget_exceeded",
            "budget": decision.budget,
            "feature": call.facts.feature,
            "limitUSD": limit,
            "period": decision.period,
            "periodEnd": end.isoformat() if end else None,
        }
    }
    headers = {
        "Retry-After": str(wait),
        names.RESPONSE_BUDGET: "blocked",
        names.RESPONSE_ROUTE: call.route.name,
    }
    return web.Response(
        status=429, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


def _passthrough_error(
    call: Call, model: ModelRuntime, error: oai.UpstreamError, deps: Deps
) -> web.Response:
    status = error.status or 400
    _count(call, model.provider.name, model.name, status, deps)
    return error_response(
        status,
        f"provider {model.provider.name!r} rejected the request: {error.message}",
        "invalid_request_error",
        code="upstream_rejected",
        headers=_headers(call, model.provider.name, model.name, "bypass", call.spent, deps),
    )


def _all_failed(call: Call, deps: Deps) -> web.Response:
    failures = call.failures
    model, last = failures[-1]
    headers = _headers(call, model.provider.name, model.name, "bypass", call.spent, deps)
    summary = "; ".join(f"{m.name} ({m.provider.name}): {e.kind}: {e.message}" for m, e in failures)
    if all(e.kind == "rate_limited" for _, e in failures):
        wait = min((e.retry_after for _, e in failures if e.retry_after is not None), default=1.0)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
        status, type_, code = 429, "rate_limit_error", "upstream_rate_limited"
    elif last.kind == "auth":
        status, type_, code = 502, "upstream_auth_error", "upstream_auth_failed"
        summary = f"provider {model.provider.name!r} rejected the credentials; {summary}"
    elif all(e.kind == "timeout" for _, e in failures):
        status, type_, code = 504, "upstream_timeout", "upstream_timeout"
    else:
        status, type_, code = 502, "upstream_error", "upstream_failed"
    _count(call, model.provider.name, model.name, status, deps)
    return error_response(
        status, f"all {len(failures)} targets failed: {summary}", type_, code=code, headers=headers
    )


class ClientGone(Exception):
    """The application closed its connection while we were writing to it."""


async def _drain(
    opened: OpenStream, tally: StreamTally, sink: Callable[[bytes], Awaitable[None]]
) -> str | None:
    """Relay the rest of an upstream stream into `sink`; the reason it broke, or None."""
    try:
        await sink(relay(opened.first, tally))
        while not tally.done:
            chunk = await opened.response.content.readany()
            if not chunk:
                return "the provider ended the stream without [DONE]"
            await sink(relay(opened.parser.feed(chunk), tally))
    except oai.UpstreamProtocolError:
        return "the provider sent an invalid stream event"
    except UPSTREAM_FAILURES as exc:
        return error_of_exception(exc).message
    return None


async def _buffer_stream(
    call: Call, model: ModelRuntime, opened: OpenStream, deps: Deps
) -> tuple[StreamTally, bytes] | None:
    """A whole cascade step, read before anything reaches the client; None when it broke."""
    tally = StreamTally(keep_text=True)
    out: list[bytes] = []

    async def keep(data: bytes) -> None:
        out.append(data)

    try:
        broken = await _drain(opened, tally, keep)
    finally:
        opened.response.close()
        usage, estimated = tally.billed_usage(call.facts.prompt_tokens)
        await _charge(call, model, usage, deps, estimated=estimated)
    if broken is not None:
        call.failures.append((model, oai.UpstreamError("connect", 200, True, None, broken)))
        return None
    return tally, b"".join(out)


async def _replay_stream(
    request: web.Request,
    call: Call,
    model: ModelRuntime,
    tally: StreamTally,
    data: bytes,
    deps: Deps,
) -> web.StreamResponse:
    response = _stream_response(
        _headers(call, model.provider.name, model.name, "bypass", None, deps)
    )
    await response.prepare(request)
    await response.write(data + _stream_tail(call, tally))
    await response.write_eof()
    _capture_output(call, tally.text, None)
    _count(call, model.provider.name, model.name, 200, deps)
    return response


def _stream_tail(call: Call, tally: StreamTally) -> bytes:
    usage = tally.usage_event if tally.usage_event and client_wants_usage(call.body) else b""
    return usage + cost_comment(call.spent) + DONE_EVENT


async def _pipe_stream(
    request: web.Request,
    call: Call,
    model: ModelRuntime,
    opened: OpenStream,
    cache_state: str,
    key: str,
    deps: Deps,
) -> web.StreamResponse:
    """Forward a live stream; after the first byte a break ends it with an explicit error."""
    tally = StreamTally(keep_text=call.runtime.config.spec.telemetry.capture_content)
    headers = _headers(call, model.provider.name, model.name, cache_state, None, deps)
    response = _stream_response(headers)
    kept: list[bytes] = []

    async def forward(data: bytes) -> None:
        if not data:
            return
        if cache_state == "miss":
            kept.append(data)
        try:
            await response.write(data)
        except ConnectionResetError as exc:
            raise ClientGone from exc

    broken: str | None = None
    gone = True  # until the relay ends: the client went away (or the request was cancelled)
    try:
        await response.prepare(request)
        deps.metrics.ttft.labels(
            call.facts.feature, model.provider.name, model.name, call.route.name
        ).observe(time.perf_counter() - call.started)
        broken = await _drain(opened, tally, forward)
        gone = False
    except (ClientGone, ConnectionResetError):
        pass
    finally:
        if tally.done:
            opened.response.release()
        else:
            opened.response.close()
        usage, estimated = tally.billed_usage(call.facts.prompt_tokens)
        await _charge(call, model, usage, deps, estimated=estimated)
        _usage_attributes(call.span, usage, tally.response_model)
        _capture_output(call, tally.text, None)
        status = 499 if gone else 200 if broken is None else 502
        _count(call, model.provider.name, model.name, status, deps)
    if gone:
        return response
    try:
        if broken is None:
            await response.write(_stream_tail(call, tally))
            if cache_state == "miss":
                entry = CachedResponse(
                    b"".join(kept),
                    tally.usage_event,
                    model.provider.name,
                    model.name,
                    call.spent,
                    deps.clock.monotonic() + call.route.spec.cache.ttl_seconds,
                )
                deps.cache.put(call.route.name, key, entry, call.route.spec.cache.max_entries)
        else:
            deps.metrics.upstream_errors.labels(model.provider.name, model.name, "stream_cut").inc()
            call.span.set_status(Status(StatusCode.ERROR, broken))
            await response.write(
                error_event(f"upstream stream broke: {broken}") + cost_comment(call.spent)
            )
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
