"""Edge: streamed answers — an upstream SSE stream relayed to the client as it arrives.

Owns the client's `text/event-stream` response: a live stream piped through as it comes (after
the first byte a break ends it with an explicit error event), a cascade step read whole before
anything reaches the client (so that its quality gate can reject it) and then replayed, and the
stream's end (usage chunk when asked for, cost comment, `[DONE]`). Each stream is charged and
counted once, whether it completes, breaks or its client goes away (499). What the bytes mean
is decided by the pure `streaming` module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from switchboard.config.runtime import ModelRuntime
from switchboard.providers import openai_compat as oai
from switchboard.sidecar.accounting import (
    answered,
    capture_output,
    charge,
    count,
    response_headers,
)
from switchboard.sidecar.call import Call, OpenStream
from switchboard.sidecar.deps import Deps
from switchboard.sidecar.responsecache import CachedResponse
from switchboard.sidecar.streaming import (
    StreamTally,
    cost_comment,
    error_event,
    relay,
    stream_tail,
)
from switchboard.sidecar.upstream import UPSTREAM_FAILURES, error_of_exception


class ClientGone(Exception):
    """The application closed its connection while we were writing to it."""


class _EventStream(web.StreamResponse):
    # aiohttp sends a StreamResponse's headers when it is prepared, in a write of their own;
    # held back, they leave with the first events, in one write and one packet (aiohttp >= 3.12
    # reads this flag; before, the headers go out at once as they did).
    _send_headers_immediately = False


def stream_response(headers: dict[str, str]) -> web.StreamResponse:
    """An unprepared SSE response with `headers`."""
    return _EventStream(
        headers=headers | {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )


async def _drain(
    opened: OpenStream, tally: StreamTally, sink: Callable[[bytes], Awaitable[None]]
) -> str | None:
    """Relay the rest of an upstream stream into `sink`; the reason it broke, or None.

    What was checked before the first byte (up to the first token) goes out before the rest of
    that first read is even parsed."""
    try:
        checked = len(opened.parsed)
        await sink(relay(opened.first[:checked], tally, opened.parsed))
        later = opened.first[checked:]
        if opened.rest:
            later += opened.parser.feed(opened.rest)
        await sink(relay(later, tally))
        while not tally.done and not tally.invalid:
            chunk = await opened.response.readany()
            if not chunk:
                return "the provider ended the stream without [DONE]"
            await sink(relay(opened.parser.feed(chunk), tally))
    except UPSTREAM_FAILURES as exc:
        return error_of_exception(exc).message
    return "the provider sent an invalid stream event" if tally.invalid else None


async def buffer_stream(
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
        await charge(call, model, usage, deps, estimated=estimated)
    if broken is not None:
        call.failures.append((model, oai.UpstreamError("connect", 200, True, None, broken)))
        return None
    return tally, b"".join(out)


async def replay_stream(
    request: web.Request,
    call: Call,
    model: ModelRuntime,
    tally: StreamTally,
    data: bytes,
    deps: Deps,
) -> web.StreamResponse:
    """Send a buffered cascade step that passed its gate."""
    response = stream_response(
        response_headers(call, model.provider.name, model.name, "bypass", None, deps)
    )
    await response.prepare(request)
    await response.write_eof(data + stream_tail(tally.usage_event, call.body, call.spent))
    capture_output(call, tally.text, None)
    count(call, model.provider.name, model.name, 200)
    return response


async def pipe_stream(
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
    headers = response_headers(call, model.provider.name, model.name, cache_state, None, deps)
    response = stream_response(headers)
    kept: list[bytes] = []
    first = True

    async def forward(data: bytes) -> None:
        nonlocal first
        if not data:
            return
        if cache_state == "miss":
            kept.append(data)
        try:
            await response.write(data)  # (the first write takes the held-back headers along)
        except ConnectionResetError as exc:
            raise ClientGone from exc
        if first:  # timed once the first token is out, and counted after it, not before
            first = False
            deps.metrics.ttft.labels(
                call.facts.feature, model.provider.name, model.name, call.route.name
            ).observe(time.perf_counter() - call.started)

    broken: str | None = None
    gone = True  # until the relay ends: the client went away (or the request was cancelled)
    try:
        await response.prepare(request)
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
        await charge(call, model, usage, deps, estimated=estimated)
        answered(call, model.provider.name, usage, tally.response_model)
        capture_output(call, tally.text, None)
        status = 499 if gone else 200 if broken is None else 502
        count(call, model.provider.name, model.name, status)
    if gone:
        return response
    try:
        # The end goes out with the chunked body's terminator, in one write.
        if broken is None:
            await response.write_eof(stream_tail(tally.usage_event, call.body, call.spent))
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
            call.broken = broken
            await response.write_eof(
                error_event(f"upstream stream broke: {broken}") + cost_comment(call.spent)
            )
    except ConnectionResetError:
        pass
    return response
