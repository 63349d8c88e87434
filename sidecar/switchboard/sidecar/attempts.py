"""Edge: the tries of one target — retries with backoff, a budget hold per paid attempt, and
each upstream exchange noted for its client span (`AttemptNote`).

`try_target` is the retry loop of one step of the plan (a 429, an open breaker or an error
that is not retryable moves on at once); `_exchange` sends one request through `Upstream` and
turns what comes back into an `Outcome`: an answer, a stream whose first event has arrived,
or a classified error. Failover across targets and the cascade live in `pipeline`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace

from switchboard.config.runtime import ModelRuntime
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint
from switchboard.providers.sse import SSEEvent, SSEParser
from switchboard.routing.breaker import TargetHealth, breaker_state
from switchboard.routing.retry import backoff_seconds, retry_allowed
from switchboard.routing.strategies import expected_cost
from switchboard.sidecar.accounting import release
from switchboard.sidecar.call import Answer, AttemptNote, Call, OpenStream, Outcome
from switchboard.sidecar.deps import Deps
from switchboard.sidecar.upstream import (
    UPSTREAM_FAILURES,
    Upstream,
    UpstreamResponse,
    error_of_exception,
)
from switchboard.telemetry.redact import redact

PATHS: Mapping[Endpoint, str] = {"chat": "/chat/completions", "embeddings": "/embeddings"}


async def try_target(call: Call, model: ModelRuntime, deps: Deps) -> Outcome | None:
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
        release(call, deps)
        error = outcome
        deps.metrics.upstream_errors.labels(provider.name, model.name, error.kind).inc()
        deps.targets.failed(model, error, call.runtime, deps.clock.monotonic())
        if not retry_allowed(error):
            break
    return error


async def _attempt(call: Call, model: ModelRuntime, deps: Deps) -> Outcome:
    """One upstream request, noted for its span."""
    provider = model.provider
    if call.endpoint == "chat":
        payload = oai.build_chat_body(call.body, model.upstream_model, stream=call.stream)
    else:
        payload = oai.build_embeddings_body(call.body, model.upstream_model)
    note = AttemptNote(model, call.attempts, time.time_ns())
    call.tried.append(note)
    begun = time.perf_counter()
    if deps.backlog:  # it runs once this request is sent, while the provider works
        deps.soon(deps.backlog.run)
    try:
        outcome = await _exchange(call, model, payload, deps.upstream)
    except Exception as exc:
        note.exception = exc
        raise
    finally:
        note.end_ns = time.time_ns()
    if isinstance(outcome, oai.UpstreamError) and provider.api_key is not None:
        # Providers quote the key they refused; a key of any shape stays out of spans/answers.
        outcome = replace(outcome, message=redact(outcome.message, [provider.api_key.value]))
    elapsed = time.perf_counter() - begun
    call.upstream_seconds += elapsed
    if isinstance(outcome, oai.UpstreamError):
        note.error = outcome
    else:
        deps.targets.succeeded(model, elapsed, deps.clock.monotonic())
        if isinstance(outcome, Answer):
            note.usage = outcome.result.usage
            note.response_model = outcome.result.response_model
    return outcome


async def _exchange(call: Call, model: ModelRuntime, payload: bytes, upstream: Upstream) -> Outcome:
    provider = model.provider
    response: UpstreamResponse | None = None
    try:
        begun = upstream.now()
        if call.stream:
            parser = SSEParser()
            # The first-byte deadline covers the answer's head and its first data event; then
            # each wait for more of the stream gets the provider's timeout.
            first_byte = begun + provider.first_byte_timeout
            response = await upstream.post(
                provider, PATHS[call.endpoint], payload, stream=True, deadline=first_byte
            )
            if response.status != 200:
                data = await response.read()
                return oai.classify_error(response.status, response.headers, data, time.time())
            try:
                first, parsed, rest = await _first_events(response, parser)
            except oai.UpstreamProtocolError as exc:
                return oai.UpstreamError("bad_response", 200, True, None, str(exc)[:200])
            if not first:
                return oai.UpstreamError("connect", 200, True, None, "stream ended before data")
            response.time_out_reads(provider.timeout)
            opened = OpenStream(response, parser, first, parsed, rest)
            response = None  # ownership passes to the caller
            return opened
        # The first-byte deadline, then the whole answer's.
        first_byte = begun + min(provider.first_byte_timeout, provider.timeout)
        response = await upstream.post(
            provider, PATHS[call.endpoint], payload, stream=False, deadline=first_byte
        )
        if provider.first_byte_timeout < provider.timeout:  # (by default they are equal)
            response.expire_at(begun + provider.timeout)
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


async def _first_events(
    response: UpstreamResponse, parser: SSEParser
) -> tuple[list[SSEEvent], list[oai.StreamChunk | None], bytes]:
    """Read until at least one data event arrived; ([], [], b"") when the stream ended first.

    The events are checked (parsed) in order up to the first one that carries output text, or
    all of them when none does: bad JSON there fails over, since nothing reached the client
    yet. A read is fed to the parser one event at a time until that token, and what follows it
    comes back unfed: a provider may send a whole answer in one burst, and the client should
    get its first token without waiting for the rest of the burst to be framed and parsed. The
    parsed chunks come back beside the events, so that the relay does not parse them again.
    """
    events: list[SSEEvent] = []
    parsed: list[oai.StreamChunk | None] = []
    while True:
        chunk = await response.readany()
        if not chunk:
            return [], [], b""
        at = 0
        while at < len(chunk):
            cut = chunk.find(b"\n\n", at)  # (a stream with \r line ends is fed whole)
            end = len(chunk) if cut < 0 else cut + 2
            fed = parser.feed(chunk[at:end])
            at = end
            for index, event in enumerate(fed):
                events.append(event)
                if event.data is None or event.data == b"[DONE]":
                    parsed.append(None)
                    continue
                checked = oai.parse_stream_event(event.data)
                parsed.append(checked)
                if checked.text:
                    events += fed[index + 1 :]
                    return events, parsed, chunk[at:]
        if any(e.data is not None for e in events):
            return events, parsed, b""
