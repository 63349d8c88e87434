"""Edge: what every request of the sidecar works with, and the state kept between requests.

`Deps` bundles the process-wide collaborators of the request path (config holder, identity,
upstream client, ledger, cache, budgets, metrics, tracer, clock, rng); `TargetBook` keeps each
target's health and latency across config reloads and mirrors breaker states into a metric.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from switchboard.config.runtime import ModelRuntime, RuntimeConfig
from switchboard.ledger.base import SpendLedger
from switchboard.providers import openai_compat as oai
from switchboard.routing.breaker import (
    TargetHealth,
    after_failure,
    after_rate_limit,
    after_success,
    breaker_state,
    ewma,
)
from switchboard.sidecar.attribution import Identity
from switchboard.sidecar.budgets import BudgetTracker
from switchboard.sidecar.responsecache import ResponseCache
from switchboard.sidecar.upstream import Upstream
from switchboard.telemetry import spans
from switchboard.telemetry.metrics import BREAKER_STATE_VALUE, Metrics


class Clock:
    """Monotonic seconds for timers, UTC wall time for records; tests pass their own."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class RuntimeHolder:
    """The config in force; a request reads it once and keeps that snapshot to the end."""

    def __init__(self, current: RuntimeConfig) -> None:
        self.current = current


class TargetBook:
    """Health and latency of every target (by model name); kept across config reloads."""

    def __init__(self, metrics: Metrics) -> None:
        self.health: dict[str, TargetHealth] = {}
        self.latency: dict[str, float] = {}
        self._metrics = metrics

    def _set(self, model: ModelRuntime, health: TargetHealth, now: float) -> None:
        self.health[model.name] = health
        state = BREAKER_STATE_VALUE[breaker_state(health, now)]
        self._metrics.breaker_state.labels(model.provider.name, model.name).set(state)

    def succeeded(self, model: ModelRuntime, seconds: float, now: float) -> None:
        self.latency[model.name] = ewma(self.latency.get(model.name), seconds)
        old = self.health.get(model.name)
        if old is not None and old != TargetHealth(resting_until=old.resting_until):
            self._set(model, after_success(old), now)

    def failed(
        self, model: ModelRuntime, error: oai.UpstreamError, runtime: RuntimeConfig, now: float
    ) -> None:
        old = self.health.get(model.name, TargetHealth())
        if error.kind == "rate_limited":
            new = after_rate_limit(old, now, error.retry_after)
        else:
            new = after_failure(old, now, runtime.config.spec.circuit_breaker)
        self._set(model, new, now)


log = logging.getLogger("switchboard.sidecar")

BACKLOG_SECONDS = 0.05
"""How long work left for an idle moment waits at most when no request comes."""


class Backlog:
    """Work that may wait for a moment the sidecar would spend waiting anyway: it runs while
    the next request waits for its provider (`run` is scheduled as that request is sent), or
    after `BACKLOG_SECONDS` when no request comes. Work done just after an answer is not free
    at concurrency 1: the application's next request often arrives while it runs (a request's
    spans, built and encoded there, added ~50 µs to the next stream's first token)."""

    def __init__(self) -> None:
        self._work: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return bool(self._work)

    def add(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
    ) -> None:
        if not self._work:
            self._timer = loop.call_later(BACKLOG_SECONDS, self.run)
        self._work.append((callback, args))

    def run(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        work, self._work = self._work, []
        for callback, args in work:
            try:
                callback(*args)
            except Exception:  # one failure must not drop the rest
                log.exception("deferred work %s failed", getattr(callback, "__name__", callback))


@dataclass
class Deps:
    """Everything a request needs besides itself."""

    holder: RuntimeHolder
    identity: Identity
    upstream: Upstream
    metrics: Metrics
    tracer: spans.Tracer
    ledger: SpendLedger
    cache: ResponseCache
    targets: TargetBook
    budgets: BudgetTracker
    clock: Clock
    rng: random.Random
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    """The loop serving requests, set when the app starts (`soon` looks it up otherwise)."""
    backlog: Backlog = field(default_factory=Backlog, repr=False)

    def soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` at the loop's next turn: after the answer this turn writes.
        (The loop is kept: asking asyncio for it costs a system call per request on 3.11.)"""
        loop = self.loop or asyncio.get_running_loop()
        loop.call_soon(callback, *args)

    def when_idle(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` once the sidecar waits for a provider (see `Backlog`)."""
        self.backlog.add(self.loop or asyncio.get_running_loop(), callback, *args)
