"""Edge: a mock OpenAI-compatible provider (aiohttp) for tests, the demo and benchmarks.

It owns the fake upstream's HTTP surface: `/v1/chat/completions` (plain and SSE),
`/v1/embeddings`, `/v1/models`, and the admin API through which tests set faults and read back
counters and the request log (`/_mock/faults`, `/_mock/stats`, `/_mock/requests`,
`/_mock/reset`, `/healthz`), plus the `switchboard mock-provider` process. What it answers,
the fault rules and the billing rule are in the pure `mockanswers` module; this module adds
time (latency, delays, hangs) and the transport.

A stream without delays or cuts is sent as one body with a Content-Length (fast); delayed
or cut streams use chunked transfer encoding, one write per event.

Faults: `cut_before_first_byte` sends the response headers (status 200) and aborts the
connection before any body byte. On a non-streaming request `cut_after` sends the headers and
half of the JSON body, then aborts (on a stream: after `after_chunks` content deltas).
`delay_ms` delays the answer for any fault; `slow` also waits it between stream chunks
(default 200 ms). `hang` holds the request until the client goes away; `reset` closes the
connection at once; `bad_json` answers 200 with a truncated JSON body (on a stream: the role
chunk and `after_chunks` content deltas, then an event whose JSON is truncated, in one body).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from switchboard.mockanswers import (
    BAD_JSON,
    CUTS,
    ERRORS,
    Json,
    MockState,
    Rule,
    answer_pieces,
    chat_completion,
    chat_stream,
    completion_tokens_of,
    embedding_inputs,
    embedding_tokens,
    embeddings_list,
    error_doc,
    models_list,
    parse_rules,
    prompt_tokens_of,
)

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STATE = web.AppKey("mock_state", MockState)


# ---- responses -------------------------------------------------------------------------------


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    return _json(error_doc(message, type_, code), status)


def _fault_error(rule: Rule) -> web.Response:
    status, type_, code, message = ERRORS[rule.fault]
    response = _error(status, message, type_, code)
    if rule.retry_after is not None:
        response.headers["Retry-After"] = f"{rule.retry_after:g}"
    return response


def _abort(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the TCP connection at once; the returned response is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return response


async def _hang(request: web.Request) -> web.StreamResponse:
    # Polling works whatever the server's handler_cancellation setting.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return web.Response()


async def _send_json(
    request: web.Request,
    state: MockState,
    rule: Rule,
    payload: bytes,
    bill: tuple[str, int, int] | None,
) -> web.StreamResponse:
    """Send a JSON answer and bill it as (model, input, output), or cut it per the rule."""
    if rule.fault in CUTS:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(request)
        if rule.fault == "cut_after":
            await response.write(payload[: len(payload) // 2])
        return _abort(request, response)
    state.served += 1
    if bill is not None:
        state.bill(*bill)
    return web.Response(body=payload, content_type="application/json")


Answer = Callable[[web.Request, MockState, Json, Rule], Awaitable[web.StreamResponse]]


def _api(answer: Answer, *, has_body: bool = True) -> Handler:
    """Wrap an answer with what every /v1 request goes through: log, auth, parse, faults."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.requests += 1
        body: object = None
        if has_body:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        entry = {"path": request.path, "headers": headers, "body": body}
        state.log.append(entry | {"client_port": peer[1] if peer else None})
        if state.api_key is not None and headers.get("authorization") != f"Bearer {state.api_key}":
            return _fault_error(Rule("401"))
        if has_body and not isinstance(body, dict):
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        doc: Json = body if isinstance(body, dict) else {}
        model = doc.get("model")
        if isinstance(model, str):
            state.model_stats(model).requests += 1
        rule = state.take_rule(model if isinstance(model, str) else None)
        delay = state.latency_s + rule.delay_s
        if delay:
            await asyncio.sleep(delay)
        if rule.fault in ERRORS:
            return _fault_error(rule)
        if rule.fault == "hang":
            return await _hang(request)
        if rule.fault == "reset":
            return _abort(request, web.Response())
        if rule.fault == "bad_json" and doc.get("stream") is not True:
            return web.Response(body=BAD_JSON, content_type="application/json")
        return await answer(request, state, doc, rule)

    return handler


async def chat_completions(
    request: web.Request, state: MockState, body: Json, rule: Rule
) -> web.StreamResponse:
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list):
        return _error(400, "'model' and 'messages' are required.", "invalid_request_error")
    completion = completion_tokens_of(body)
    prompt = prompt_tokens_of(messages)
    pieces = answer_pieces(messages, completion)
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return await _stream_chat(request, state, rule, model, prompt, pieces, include_usage)
    payload = chat_completion(state.next_id(), int(time.time()), model, prompt, completion, pieces)
    return await _send_json(request, state, rule, payload, (model, prompt, completion))


async def _stream_chat(
    request: web.Request,
    state: MockState,
    rule: Rule,
    model: str,
    prompt: int,
    pieces: list[str],
    include_usage: bool,
) -> web.StreamResponse:
    events = chat_stream(state.next_id(), int(time.time()), model, prompt, pieces, include_usage)
    head, deltas, tail = events.head, events.deltas, events.tail
    if rule.fault == "bad_json":
        shown = deltas[: rule.after_chunks]
        state.bill(model, prompt, len(shown))
        broken = b"data: " + BAD_JSON + b"\n\n"
        return web.Response(body=b"".join([head, *shown, broken]), headers=SSE_HEADERS)
    gap = state.chunk_delay_s + (rule.delay_s if rule.fault == "slow" else 0.0)
    if not gap and rule.fault not in CUTS:  # the hot path: one body, no chunked encoding
        state.served += 1
        state.bill(model, prompt, len(deltas))
        return web.Response(body=b"".join([head, *deltas, tail]), headers=SSE_HEADERS)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    if rule.fault == "cut_before_first_byte":
        return _abort(request, response)
    cut = rule.after_chunks if rule.fault == "cut_after" else None
    sent = 0
    await response.write(head)
    try:
        for delta in deltas[:cut]:
            if gap:
                await asyncio.sleep(gap)
            await response.write(delta)
            sent += 1
        if cut is not None:
            return _abort(request, response)
        if gap:
            await asyncio.sleep(gap)
        await response.write(tail)
        state.served += 1
        return response
    finally:
        state.bill(model, prompt, sent)


async def embeddings(
    request: web.Request, state: MockState, body: Json, rule: Rule
) -> web.StreamResponse:
    model, items = body.get("model"), embedding_inputs(body.get("input"))
    if not isinstance(model, str) or items is None:
        message = "'model' and 'input' (a string, strings or token arrays) are required."
        return _error(400, message, "invalid_request_error")
    tokens = embedding_tokens(items)
    as_base64 = body.get("encoding_format") == "base64"
    payload = embeddings_list(model, items, tokens, as_base64=as_base64)
    return await _send_json(request, state, rule, payload, (model, tokens, 0))


def _models(name: str) -> Answer:
    payload = models_list(name, int(time.time()))

    async def models(
        request: web.Request, state: MockState, body: Json, rule: Rule
    ) -> web.StreamResponse:
        return await _send_json(request, state, rule, payload, None)

    return models


# ---- admin -----------------------------------------------------------------------------------


async def set_faults(request: web.Request) -> web.Response:
    try:
        rules = parse_rules(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return _error(400, str(exc), "invalid_request_error")
    request.app[STATE].rules = rules
    return await get_faults(request)


async def get_faults(request: web.Request) -> web.Response:
    return _json({"rules": [dataclasses.asdict(r) for r in request.app[STATE].rules]})


async def get_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    by_model = {model: dataclasses.asdict(stats) for model, stats in state.by_model.items()}
    doc = {"name": state.name, "requests": state.requests, "served": state.served}
    return _json({**doc, "by_model": by_model})


async def get_requests(request: web.Request) -> web.Response:
    return _json(list(request.app[STATE].log))


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"ok": True})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_mock_app(
    name: str,
    *,
    api_key: str | None = None,
    latency_ms: float = 0,
    chunk_delay_ms: float = 0,
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024**2)
    app[STATE] = MockState(name, api_key, latency_ms / 1000, chunk_delay_ms / 1000)
    app.router.add_post("/v1/chat/completions", _api(chat_completions))
    app.router.add_post("/v1/embeddings", _api(embeddings))
    app.router.add_get("/v1/models", _api(_models(name), has_body=False))
    app.router.add_post("/_mock/faults", set_faults)
    app.router.add_get("/_mock/faults", get_faults)
    app.router.add_get("/_mock/stats", get_stats)
    app.router.add_get("/_mock/requests", get_requests)
    app.router.add_post("/_mock/reset", reset)
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(_affinity_cookie)
    return app


async def _affinity_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Every API answer sets a cookie, as real providers' edge proxies do (Cloudflare's
    `__cf_bm`): a proxy must not send it back with other users' requests."""
    if request.path.startswith("/v1/"):
        response.headers.add("Set-Cookie", f"mock_affinity={request.app[STATE].requests}; Path=/")


# ---- process ---------------------------------------------------------------------------------


async def serve(app: web.Application, host: str, port: int, name: str) -> None:
    """Serve until SIGINT or SIGTERM; print the ready line once listening."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    shown = f"[{host}]" if ":" in host else host
    print(f"mock-provider {name} listening on http://{shown}:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m switchboard.mockprovider",
        description="Mock OpenAI-compatible provider with fault injection.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="mock")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    app = create_mock_app(
        args.name,
        api_key=args.api_key,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
    )
    coro = serve(app, args.host, args.port, args.name)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
