"""Edge: every Prometheus metric of the sidecar, defined once, on a registry of its own.

Money is Decimal everywhere else; it becomes float only here, at the Prometheus boundary.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from switchboard.pricing.cost import Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2, "resting": 3}

CALL_LABELS = ("feature", "team", "provider", "model", "route")

M = TypeVar("M", bound=MetricWrapperBase)


class Family(Generic[M]):
    """A labelled metric whose children are remembered: `labels()` on the request path is a
    dict lookup instead of prometheus_client's validation and lock on every call. Label values
    must be strings (as everywhere in the sidecar); children are never removed from these."""

    __slots__ = ("_children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The sidecar's metrics; a fresh registry per instance keeps tests independent."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Family(
            Counter(
                "switchboard_requests",
                "Requests answered, by outcome.",
                (*CALL_LABELS, "status"),
                registry=r,
            )
        )
        self.tokens = Family(
            Counter(
                "switchboard_tokens",
                "Tokens billed by providers.",
                (*CALL_LABELS, "type"),
                registry=r,
            )
        )
        self.cost = Family(
            Counter(
                "switchboard_cost_usd", "Money spent at providers, in USD.", CALL_LABELS, registry=r
            )
        )
        self.duration = Family(
            Histogram(
                "switchboard_request_duration_seconds",
                "Time to answer a request.",
                ("feature", "route", "status"),
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.ttft = Family(
            Histogram(
                "switchboard_time_to_first_token_seconds",
                "Time to the first streamed byte.",
                ("feature", "provider", "model", "route"),
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.overhead = Family(
            Histogram(
                "switchboard_overhead_seconds",
                "Time the sidecar itself added to a request.",
                ("route",),
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.upstream_errors = Family(
            Counter(
                "switchboard_upstream_errors",
                "Failed upstream attempts, by kind.",
                ("provider", "model", "kind"),
                registry=r,
            )
        )
        self.failovers = Family(
            Counter(
                "switchboard_failovers",
                "Moves from one target to the next within a request.",
                ("feature", "route", "provider", "model", "reason"),
                registry=r,
            )
        )
        self.cache_hits = Family(
            Counter(
                "switchboard_cache_hits",
                "Requests answered from the response cache.",
                ("feature", "route"),
                registry=r,
            )
        )
        self.cache_saved = Family(
            Counter(
                "switchboard_cache_saved_usd",
                "What cache hits would have cost, in USD.",
                ("feature", "route"),
                registry=r,
            )
        )
        self.budget_spent = Family(
            Gauge(
                "switchboard_budget_spent_usd",
                "Spend of a budget's current period, in USD.",
                ("budget", "feature", "team"),
                registry=r,
            )
        )
        self.budget_limit = Family(
            Gauge(
                "switchboard_budget_limit_usd",
                "Limit of a budget per period, in USD.",
                ("budget", "feature", "team"),
                registry=r,
            )
        )
        self.breaker_state = Family(
            Gauge(
                "switchboard_circuit_state",
                "Circuit state per target: 0 closed, 1 half-open, 2 open, 3 resting after a 429.",
                ("provider", "model"),
                registry=r,
            )
        )
        self.config_reloads = Counter(
            "switchboard_config_reloads", "Config reloads, by result.", ("result",), registry=r
        )
        self.config_info = Gauge(
            "switchboard_config_info",
            "The config in force (value 1).",
            ("policy", "hash"),
            registry=r,
        )

    def record_call(
        self, labels: tuple[str, str, str, str, str], usage: Usage, cost: Decimal
    ) -> None:
        """Tokens and cost of one paid upstream attempt."""
        self.tokens.labels(*labels, "input").inc(usage.input_tokens)
        self.tokens.labels(*labels, "output").inc(usage.output_tokens)
        if usage.cached_input_tokens:
            self.tokens.labels(*labels, "cached_input").inc(usage.cached_input_tokens)
        self.cost.labels(*labels).inc(float(cost))
