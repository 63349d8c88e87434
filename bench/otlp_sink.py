"""Edge: a tiny OTLP/HTTP trace receiver for the benchmark — accepts `POST /v1/traces`
(protobuf), counts the spans and answers an empty `ExportTraceServiceResponse`.

`GET /stats` returns `{"requests": n, "spans": n, "bytes": n}`. Run it as
`python bench/otlp_sink.py --port 0`; it prints `otlp-sink listening on http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

COUNTS = web.AppKey("counts", dict)
EMPTY = ExportTraceServiceResponse().SerializeToString()


async def traces(request: web.Request) -> web.Response:
    body = await request.read()
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    counts = request.app[COUNTS]
    counts["requests"] += 1
    counts["bytes"] += len(body)
    counts["spans"] += sum(
        len(scope.spans) for resource in message.resource_spans for scope in resource.scope_spans
    )
    return web.Response(body=EMPTY, content_type="application/x-protobuf")


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[COUNTS])


async def serve(port: int) -> None:
    app = web.Application(client_max_size=64 * 1024**2)
    app[COUNTS] = {"requests": 0, "spans": 0, "bytes": 0}
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"otlp-sink listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
