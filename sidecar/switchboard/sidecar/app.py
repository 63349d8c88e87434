"""Edge: the sidecar process — app factory, settings and the server loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from switchboard.api import names
from switchboard.ledger.base import SpendLedger
from switchboard.ledger.factory import open_ledger
from switchboard.ledger.leases import RedisLeases
from switchboard.pricing.catalog import catalog_price
from switchboard.sidecar import handlers, reload
from switchboard.sidecar.attribution import Identity
from switchboard.sidecar.budgets import BudgetTracker
from switchboard.sidecar.deps import Clock, Deps, RuntimeHolder, TargetBook
from switchboard.sidecar.keys import DEPS
from switchboard.sidecar.responsecache import ResponseCache
from switchboard.sidecar.upstream import Upstream
from switchboard.telemetry import spans
from switchboard.telemetry.metrics import Metrics
from switchboard.telemetry.tracing import Tracing

log = logging.getLogger("switchboard.sidecar")
GC_THRESHOLDS = (10_000, 20, 20)
"""Collector thresholds once serving: generation 0 every 10,000 net allocations (not 700)."""


@dataclass(frozen=True)
class SidecarSettings:
    """Process settings (flags and env); the routing policy lives in the config file."""

    config_path: Path
    host: str = "127.0.0.1"
    port: int = names.DEFAULT_PORT
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = None
    feature: str | None = None
    team: str | None = None
    namespace: str = "default"
    reload_interval: float = 1.0
    budget_refresh: float = 0.5
    outbox: Path = Path("/tmp/switchboard/outbox.jsonl")
    shutdown_timeout: float = 30.0


def create_app(
    settings: SidecarSettings,
    *,
    config_source: reload.ConfigSource,
    ledger: SpendLedger | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    tracing: Tracing | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The sidecar application; raises ConfigError when the initial config is unusable."""
    runtime = config_source.load()
    metrics = metrics or Metrics()
    reload.publish(runtime, metrics, None)
    clock = clock or Clock()
    redis_url = runtime.config.spec.ledger.redis_url
    if ledger is None:
        ledger = open_ledger(redis_url, settings.outbox)
    leases = RedisLeases(redis_url) if redis_url else None
    deps = Deps(
        holder=RuntimeHolder(runtime),
        identity=Identity(settings.namespace, settings.feature, settings.team),
        upstream=Upstream(),
        metrics=metrics,
        tracer=spans.tracer_from(tracing),
        ledger=ledger,
        cache=ResponseCache(clock.monotonic),
        targets=TargetBook(metrics),
        budgets=BudgetTracker(ledger, settings.namespace, metrics, clock.now, leases=leases),
        clock=clock,
        rng=rng or random.Random(),
    )
    app = web.Application(middlewares=[handlers.openai_errors], client_max_size=1024**3)
    app[DEPS] = deps
    handlers.add_routes(app)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        deps.loop = asyncio.get_running_loop()
        await deps.ledger.start()
        tasks = [
            asyncio.create_task(
                reload.watch(config_source, deps.holder, metrics, settings.reload_interval)
            ),
            asyncio.create_task(
                deps.budgets.refresh_forever(lambda: deps.holder.current, settings.budget_refresh)
            ),
        ]
        yield
        for task in tasks:
            task.cancel()
        await deps.budgets.close()
        await deps.upstream.close()
        await deps.ledger.close()
        deps.backlog.run()
        if tracing is not None:
            tracing.shutdown()

    app.cleanup_ctx.append(resources)
    return app


def _metrics_app(main: web.Application) -> web.Application:
    app = web.Application()
    app[DEPS] = main[DEPS]
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app


async def serve(settings: SidecarSettings, env: Mapping[str, str]) -> None:
    """Run the sidecar until SIGTERM or SIGINT; in-flight requests get `shutdown_timeout`."""
    source = reload.ConfigSource(settings.config_path, env, catalog_price)
    app = create_app(settings, config_source=source, tracing=spans.tracing_from_env(env))
    # auto_decompress off: aiohttp's request decompression answers a corrupt gzip/deflate body
    # with a reset connection or a hang; compressed bodies get a 415 from the pipeline instead.
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        auto_decompress=False,
    )
    await runner.setup()
    # What start-up built (config, price catalog, pydantic models, imports) lives as long as the
    # process: move it out of the collector's reach, so that a full collection under load walks
    # only what requests allocate (it paused the loop for 10-25 ms before). Requests free what
    # they allocate by reference counting; the collector only looks for cycles, and running it
    # every 700 allocations (the default) cost 7-11 % of the CPU of a request (bench/README.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    await web.TCPSite(runner, settings.host, settings.port, reuse_address=True).start()
    extra: web.AppRunner | None = None
    if settings.metrics_port is not None:
        extra = web.AppRunner(_metrics_app(app), access_log=None)
        await extra.setup()
        await web.TCPSite(extra, settings.metrics_host, settings.metrics_port).start()
    runtime = app[DEPS].holder.current
    host, port = runner.addresses[0][:2]
    print(
        f"switchboard sidecar listening on http://{host}:{port} "
        f"(policy {runtime.config.policy}, config {runtime.hash})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if extra is not None:
        await extra.cleanup()
    await runner.cleanup()


def settings_from(
    config: str,
    *,
    env: Mapping[str, str],
    host: str,
    port: int,
    metrics_port: int | None,
    feature: str | None,
    team: str | None,
    namespace: str | None,
    reload_interval: float,
    outbox: str | None = None,
) -> SidecarSettings:
    return SidecarSettings(
        config_path=Path(config),
        host=host,
        port=port,
        metrics_port=metrics_port,
        feature=feature or env.get(names.ENV_FEATURE) or None,
        team=team or env.get(names.ENV_TEAM) or None,
        namespace=namespace or env.get(names.ENV_NAMESPACE) or "default",
        reload_interval=reload_interval,
        outbox=Path(outbox or env.get("SWITCHBOARD_OUTBOX") or SidecarSettings.outbox),
    )


def run(settings: SidecarSettings) -> None:
    """Blocking entry point, on uvloop."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, os.environ))
