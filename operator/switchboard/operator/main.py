"""Edge: `switchboard operator`: the shared clients, the registry, and kopf on uvloop.

The ready line (`switchboard operator metrics on http://HOST:PORT/metrics`, on stdout) comes
once /metrics is served, before kopf connects; readiness of the operator itself is kopf's
liveness endpoint when one is configured.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import kopf

from switchboard.config.model import OperatorSettings
from switchboard.operator import handlers, startup
from switchboard.operator.kube import Kube
from switchboard.operator.ledgers import Ledgers
from switchboard.operator.memo import Memo
from switchboard.operator.metrics import OperatorMetrics
from switchboard.operator.slack import Slack


def _not_a_pod_event_success(record: logging.LogRecord) -> bool:
    """kopf logs every handler success at INFO; for pod events (every status change of every
    opted-in pod) that is noise. Their failures are still logged."""
    return not (record.levelno == logging.INFO and "'pod_seen' succeeded" in record.getMessage())


async def serve(settings: OperatorSettings) -> None:
    """Run the operator until SIGTERM or SIGINT."""
    logging.getLogger("kopf.objects").addFilter(_not_a_pod_event_success)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    metrics = OperatorMetrics()
    if settings.metrics_port is not None:
        port = metrics.serve(settings.metrics_host, settings.metrics_port)
        print(
            f"switchboard operator metrics on http://{settings.metrics_host}:{port}/metrics",
            flush=True,
        )
    kube = await Kube.connect()
    ledgers = Ledgers()
    priority = settings.priority if settings.priority is not None else startup.default_priority()
    try:
        if settings.peering is not None:
            namespaces: list[str | None] = [*settings.namespaces] or [None]
            for namespace in namespaces:  # None: the ClusterKopfPeering
                await kube.ensure_peering(settings.peering, namespace)
        async with aiohttp.ClientSession() as session:
            memo = Memo(settings, kube, Slack(session), ledgers, metrics, priority)
            await kopf.operator(
                registry=registry,
                memo=memo,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                liveness_endpoint=settings.liveness_endpoint,
            )
    finally:
        await ledgers.close()
        await kube.close()
        metrics.close()


def run(settings: OperatorSettings) -> None:
    """Blocking entry point, on uvloop; `PeeringMissing` when peering cannot work."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings))
