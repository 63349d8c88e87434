"""Edge: the operator's Prometheus metrics (reconciles, errors, alerts sent, injections, unmetered
pods) and their server.

Every metric name is defined here. Each operator process has its own `CollectorRegistry`, so
tests can make as many as they like.
"""

from __future__ import annotations

import threading
from typing import Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

Kind = Literal["RoutingPolicy", "FeatureBudget"]
Channel = Literal["event", "webhook"]


class OperatorMetrics:
    """The counters the handlers update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconciles = Counter(
            "switchboard_operator_reconciles_total",
            "Objects reconciled, by kind and result (Rendered, Invalid, LedgerRead, ...).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "switchboard_operator_errors_total",
            "Handler runs that failed (and are retried), by kind and error.",
            ["kind", "error"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "switchboard_operator_alerts_sent_total",
            "Budget threshold alerts delivered, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.alert_failures = Counter(
            "switchboard_operator_alert_failures_total",
            "Budget alert deliveries that failed (the webhook is retried), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.injections = Counter(
            "switchboard_operator_injections_total",
            "Pod admissions the webhook answered, by result (Injected, AlreadyInjected, "
            "PolicyMissing, Conflict, Error, ...).",
            ["result"],
            registry=self.registry,
        )
        self.unmetered_pods = Gauge(
            "switchboard_operator_unmetered_pods",
            "Pods that ask for the sidecar but run without it (their traffic is not metered), "
            "by namespace and RoutingPolicy.",
            ["namespace", "policy"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def reconciled(self, kind: Kind, result: str) -> None:
        self.reconciles.labels(kind=kind, result=result).inc()

    def failed(self, kind: Kind, error: BaseException) -> None:
        self.errors.labels(kind=kind, error=type(error).__name__).inc()

    def alert_sent(self, channel: Channel) -> None:
        self.alerts.labels(channel=channel).inc()

    def alert_failed(self, channel: Channel) -> None:
        self.alert_failures.labels(channel=channel).inc()

    def injected(self, result: str) -> None:
        self.injections.labels(result=result).inc()

    def unmetered(self, namespace: str, policy: str, count: int) -> None:
        self.unmetered_pods.labels(namespace=namespace, policy=policy).set(count)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on `host:port` (0: a free port) in a thread; the port bound."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound: int = self._server.server_port
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
