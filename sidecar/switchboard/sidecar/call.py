"""Edge: one request in flight (`Call`) and what one upstream attempt returns (`Outcome`).

A `Call` is built by `intake.incoming_call` once the request is valid and routed; the pipeline
attaches the request's span and the attempt loop updates its counters (attempts, upstream time,
spend, budget holds, failures). An `OpenStream` owns an upstream response until it is relayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from opentelemetry import trace

from switchboard.budget.decide import ALLOW, BudgetDecision
from switchboard.config.runtime import ModelRuntime, RouteRuntime, RuntimeConfig
from switchboard.pricing.cost import ZERO
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint
from switchboard.providers.sse import SSEEvent, SSEParser
from switchboard.routing.match import RequestFacts
from switchboard.sidecar.upstream import UpstreamResponse


@dataclass
class Call:
    """One request in flight; `span` is the request's span once `pipeline.run` opened it."""

    endpoint: Endpoint
    body: dict[str, object]
    runtime: RuntimeConfig
    facts: RequestFacts
    route: RouteRuntime
    stream: bool
    started: float
    span: trace.Span = trace.INVALID_SPAN
    upstream_seconds: float = 0.0
    attempts: int = 0
    spent: Decimal = ZERO
    held: Decimal = ZERO
    budget: BudgetDecision = ALLOW
    blocked: BudgetDecision | None = None
    failures: list[tuple[ModelRuntime, oai.UpstreamError]] = field(default_factory=list)

    @property
    def team(self) -> str:
        return self.facts.team or ""

    def labels(self, model: ModelRuntime) -> tuple[str, str, str, str, str]:
        return (self.facts.feature, self.team, model.provider.name, model.name, self.route.name)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful non-streamed upstream answer."""

    raw: bytes
    result: oai.ChatResult


@dataclass(frozen=True, slots=True)
class OpenStream:
    """An upstream stream whose first event has arrived and nothing has reached the client."""

    response: UpstreamResponse
    parser: SSEParser
    first: list[SSEEvent]
    parsed: list[oai.StreamChunk | None]
    """The data of `first`'s events up to the first token, parsed when they were checked (None
    for an event without data); the relay parses the rest as it sends it."""
    rest: bytes = b""
    """What the first read held after the first token, not fed to `parser` yet."""


Outcome = Answer | OpenStream | oai.UpstreamError
