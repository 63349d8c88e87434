"""Edge: the HTTP surface of the sidecar. Handlers hand over to `pipeline.run` at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from switchboard.routing.breaker import TargetHealth, breaker_state
from switchboard.sidecar import pipeline
from switchboard.sidecar.answers import error_response
from switchboard.sidecar.keys import DEPS

log = logging.getLogger("switchboard.sidecar")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await pipeline.run(request, "chat", request.app[DEPS])


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await pipeline.run(request, "embeddings", request.app[DEPS])


async def models(request: web.Request) -> web.Response:
    runtime = request.app[DEPS].holder.current
    data = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": m.provider.name}
        for m in runtime.models.values()
    ]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[DEPS].holder.current
    return web.json_response(
        {"status": "ready", "policy": runtime.config.policy, "configHash": runtime.hash}
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[DEPS].metrics.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def debug_targets(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    now = deps.clock.monotonic()
    out = []
    for model in deps.holder.current.models.values():
        health = deps.targets.health.get(model.name, TargetHealth())
        latency = deps.targets.latency.get(model.name)
        out.append(
            {
                "model": model.name,
                "provider": model.provider.name,
                "region": model.provider.region,
                "state": breaker_state(health, now),
                "consecutiveFailures": health.consecutive_failures,
                "openForSeconds": round(max(0.0, health.open_until - now), 3),
                "restingForSeconds": round(max(0.0, health.resting_until - now), 3),
                "latencyMs": None if latency is None else round(latency * 1000, 3),
            }
        )
    return web.json_response({"targets": out}, dumps=_dumps)


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the client sees is an OpenAI-style JSON object, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        type_ = "invalid_request_error" if exc.status < 500 else "server_error"
        return error_response(exc.status, exc.reason, type_)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error in the sidecar", "server_error")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/models", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/targets", debug_targets)
