"""Edge: the client's request, from bytes on the socket to a routed `Call` or a 4xx answer.

Owns what a request must pass before anything is spent or traced: an uncompressed body
(415), within the policy's size limit (413), that can be read (400), valid JSON (400) of the
OpenAI request shape (`request_problem`, 400), and a route that matches its attribution (404).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from switchboard.config.runtime import RuntimeConfig
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint, request_problem
from switchboard.routing.match import match_route
from switchboard.sidecar.answers import error_response
from switchboard.sidecar.attribution import Identity, request_facts
from switchboard.sidecar.call import Call

TRACE_HEADERS = ("traceparent", "tracestate")


async def read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The request body, or the error answer when it is compressed, over `limit` bytes or
    cannot be read (e.g. broken chunked framing)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):
        return error_response(
            415,
            f"Content-Encoding {encoding!r} is not supported; send the JSON body uncompressed",
            "invalid_request_error",
            code="unsupported_content_encoding",
        )
    try:
        if request.content_length is not None and request.content_length > limit:
            return _too_large(limit)
        if request.content.is_eof():  # the whole body came with the head, as it usually does
            body = request.content.read_nowait()
            return _too_large(limit) if len(body) > limit else body
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                return _too_large(limit)
            chunks.append(chunk)
    except web.RequestPayloadError:
        return error_response(400, "request body could not be read", "invalid_request_error")
    return b"".join(chunks)


def _too_large(limit: int) -> web.Response:
    return error_response(
        413,
        f"request body exceeds {limit} bytes",
        "invalid_request_error",
        code="request_too_large",
    )


def incoming_call(
    endpoint: Endpoint,
    raw: bytes,
    headers: Mapping[str, str],
    runtime: RuntimeConfig,
    identity: Identity,
    started: float,
    start_ns: int,
) -> Call | web.Response:
    """The request as a routed `Call`, or the error answer when it is invalid or unrouted."""
    spec = runtime.config.spec
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(400, "request body is not valid JSON", "invalid_request_error")
    problem = request_problem(endpoint, body, raw)
    if problem is not None:
        return error_response(400, problem.message, "invalid_request_error", param=problem.param)
    facts = request_facts(
        headers,
        body["model"],
        identity,
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
    call = Call(endpoint, body, runtime, facts, route, stream, started, start_ns)
    if "traceparent" in headers:
        call.trace_headers = {k: headers[k] for k in TRACE_HEADERS if k in headers}
    return call
