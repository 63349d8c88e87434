"""Edge: a mock OpenAI-compatible provider (aiohttp) for tests, the demo and benchmarks.

It owns the fake upstream: `/v1/chat/completions` (plain and SSE), `/v1/embeddings`,
`/v1/models`, fault injection, and the counters and request log that tests read back through
the admin API (`/_mock/faults`, `/_mock/stats`, `/_mock/requests`, `/_mock/reset`,
`/healthz`). Answers are deterministic:

- prompt_tokens = 3 + sum over messages of (ceil(characters of the content / 4) + 4);
- completion_tokens = max_completion_tokens or max_tokens if given, else 16;
- the answer is completion_tokens times "tok ", unless the last user message contains
  `[[json]]` (answer `{"ok": true}`), `[[refuse]]` (a refusal sentence) or `[[empty]]` ("");
  usage is the same in those cases. A stream sends one content delta per completion token
  (a special answer is spread over those deltas, so some may be empty).

Billing rule (`/_mock/stats`): a request is billed only for what reached the client.
A complete answer bills prompt + completion tokens; a stream bills the prompt once its first
body byte is written plus one output token per content delta written, so a stream cut
mid-way bills the prompt plus the tokens already sent. Error statuses, `hang`, `reset`,
`bad_json`, `cut_before_first_byte` and cut non-streaming bodies bill nothing; only complete
200 answers count as `served`.

A stream without delays or cuts is sent as one body with a Content-Length (fast); delayed
or cut streams use chunked transfer encoding, one write per event.

Faults: `cut_before_first_byte` sends the response headers (status 200) and aborts the
connection before any body byte. On a non-streaming request `cut_after` sends the headers and
half of the JSON body, then aborts. `delay_ms` delays the answer for any fault; `slow` also
waits it between stream chunks (default 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import fnmatch
import hashlib
import math
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

Json = dict[str, Any]
FAULTS = frozenset(
    {"ok", "429", "500", "503", "401", "400", "hang", "reset", "slow"}
    | {"cut_before_first_byte", "cut_after", "bad_json"}
)
CUTS = frozenset({"cut_before_first_byte", "cut_after"})
RULE_KEYS = frozenset({"fault", "times", "model", "retry_after", "delay_ms", "after_chunks"})
# fault -> (status, error type, error code, message)
ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "400": (400, "invalid_request_error", None, "Invalid request (injected fault)."),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "429": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached (mock)."),
    "500": (500, "server_error", None, "The server had an error processing your request."),
    "503": (503, "server_error", None, "The server is overloaded or not ready yet."),
}
SLOW_DEFAULT_MS = 200.0
DEFAULT_COMPLETION_TOKENS = 16
EMBEDDING_DIMENSIONS = 8
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
REFUSAL = "I'm sorry, but I can't help with that."
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
BAD_JSON = b'{"id": "chatcmpl-broken", "object": '
DONE = b"data: [DONE]\n\n"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Rule:
    """One fault rule; `times` None means forever."""

    fault: str
    times: int | None = None
    model: str | None = None
    retry_after: float | None = None
    delay_ms: float | None = None
    after_chunks: int = 3

    def matches(self, model: str | None) -> bool:
        if self.times == 0:
            return False
        return self.model is None or (model is not None and fnmatch.fnmatchcase(model, self.model))

    @property
    def delay_s(self) -> float:
        if self.delay_ms is not None:
            return self.delay_ms / 1000
        return SLOW_DEFAULT_MS / 1000 if self.fault == "slow" else 0.0


NO_FAULT = Rule("ok")


def parse_rules(doc: object) -> list[Rule]:
    """`{"rules": [...]}` -> rules; raises ValueError on any unexpected shape."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ValueError('expected {"rules": [...]}')
    return [_parse_rule(item) for item in doc["rules"]]


def _parse_rule(item: object) -> Rule:
    if not isinstance(item, dict) or item.get("fault") not in FAULTS:
        raise ValueError(f"each rule needs a fault among {sorted(FAULTS)}")
    if unknown := set(item) - RULE_KEYS:
        raise ValueError(f"unknown rule keys: {sorted(unknown)}")
    rule = Rule(**item)
    if rule.times is not None and not (_is_int(rule.times) and rule.times >= 0):
        raise ValueError("times must be a non-negative integer or null")
    if rule.model is not None and not isinstance(rule.model, str):
        raise ValueError("model must be a glob string")
    for number in (rule.retry_after, rule.delay_ms):
        if number is not None and not (isinstance(number, int | float) and number >= 0):
            raise ValueError("retry_after and delay_ms must be non-negative numbers")
    if not (_is_int(rule.after_chunks) and rule.after_chunks >= 0):
        raise ValueError("after_chunks must be a non-negative integer")
    return rule


@dataclass
class ModelStats:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class MockState:
    name: str
    api_key: str | None
    latency_s: float
    chunk_delay_s: float
    rules: list[Rule] = field(default_factory=list)
    requests: int = 0
    served: int = 0
    by_model: dict[str, ModelStats] = field(default_factory=dict)
    log: deque[Json] = field(default_factory=lambda: deque(maxlen=200))
    seq: int = 0

    def take_rule(self, model: str | None) -> Rule:
        for rule in self.rules:
            if rule.matches(model):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return NO_FAULT

    def model_stats(self, model: str) -> ModelStats:
        if model not in self.by_model:
            self.by_model[model] = ModelStats()
        return self.by_model[model]

    def bill(self, model: str, input_tokens: int, output_tokens: int) -> None:
        stats = self.model_stats(model)
        stats.input_tokens += input_tokens
        stats.output_tokens += output_tokens

    def next_id(self) -> str:
        self.seq += 1
        return f"chatcmpl-{self.name}-{self.seq}"

    def reset(self) -> None:
        self.rules.clear()
        self.requests = self.served = 0
        self.by_model.clear()
        self.log.clear()


STATE = web.AppKey("mock_state", MockState)


# ---- deterministic answers ------------------------------------------------------------------


def text_of(content: object) -> str:
    """Message content (a string, a list of parts with "text", or null) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _get(message: object, key: str) -> object:
    return message.get(key) if isinstance(message, dict) else None


def prompt_tokens_of(messages: list[object]) -> int:
    return 3 + sum(math.ceil(len(text_of(_get(m, "content"))) / 4) + 4 for m in messages)


def answer_pieces(messages: list[object], completion_tokens: int) -> list[str]:
    """The answer as exactly `completion_tokens` pieces (one per streamed content delta)."""
    users = [m for m in messages if _get(m, "role") == "user"]
    last_user = text_of(_get(users[-1], "content")) if users else ""
    if "[[json]]" in last_user:
        return _spread('{"ok": true}', completion_tokens)
    if "[[refuse]]" in last_user:
        return _spread(REFUSAL, completion_tokens)
    if "[[empty]]" in last_user:
        return [""] * completion_tokens
    return ["tok "] * completion_tokens


def _spread(text: str, n: int) -> list[str]:
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]


def embedding_of(item: str | list[int]) -> list[float]:
    """A deterministic vector of dimension 8; its values are exact in float32."""
    digest = hashlib.blake2b(orjson.dumps(item), digest_size=EMBEDDING_DIMENSIONS).digest()
    return [(b - 128) / 128 for b in digest]


def _base64_of(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _embedding_inputs(raw: object) -> list[str | list[int]] | None:
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(i, str) for i in raw) or all(
        isinstance(i, list) and all(_is_int(t) for t in i) for i in raw
    ):
        return list(raw)
    return [raw] if all(_is_int(i) for i in raw) else None


def _usage(prompt: int, completion: int) -> Json:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


# ---- responses -------------------------------------------------------------------------------


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    return _json(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}, status
    )


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
        state.log.append({"path": request.path, "headers": headers, "body": body})
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
        if rule.fault == "bad_json":
            return web.Response(body=BAD_JSON, content_type="application/json")
        return await answer(request, state, doc, rule)

    return handler


async def chat_completions(
    request: web.Request, state: MockState, body: Json, rule: Rule
) -> web.StreamResponse:
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not isinstance(messages, list):
        return _error(400, "'model' and 'messages' are required.", "invalid_request_error")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    completion = max_tokens if _is_int(max_tokens) else DEFAULT_COMPLETION_TOKENS
    prompt = prompt_tokens_of(messages)
    pieces = answer_pieces(messages, completion)
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return await _stream_chat(request, state, rule, model, prompt, pieces, include_usage)
    message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    payload = orjson.dumps(
        {
            "id": state.next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [choice],
            "usage": _usage(prompt, completion),
        }
    )
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
    base: Json = {
        "id": state.next_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_mock",
    }
    if include_usage:
        base["usage"] = None
    events: dict[str, bytes] = {}  # equal pieces share one encoded event

    def event(delta: Json, finish: str | None = None, key: str | None = None) -> bytes:
        if key is not None and key in events:
            return events[key]
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
        if key is not None:
            events[key] = data
        return data

    head = event({"role": "assistant", "content": "", "refusal": None})
    deltas = [event({"content": piece}, key=piece) for piece in pieces]
    tail = event({}, "stop")
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(prompt, len(pieces))}
        tail += b"data: " + orjson.dumps(usage) + b"\n\n"
    tail += DONE
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
    model, items = body.get("model"), _embedding_inputs(body.get("input"))
    if not isinstance(model, str) or items is None:
        message = "'model' and 'input' (a string, strings or token arrays) are required."
        return _error(400, message, "invalid_request_error")
    tokens = sum(math.ceil(len(i) / 4) if isinstance(i, str) else len(i) for i in items)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = embedding_of(item)
        embedding = _base64_of(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    payload = orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
    return await _send_json(request, state, rule, payload, (model, tokens, 0))


def _models(name: str) -> Answer:
    created = int(time.time())
    data = [{"id": m, "object": "model", "created": created, "owned_by": name} for m in MODELS]
    payload = orjson.dumps({"object": "list", "data": data})

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
    return app


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
