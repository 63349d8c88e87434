"""Edge: one request in flight (`Call`) and what one upstream attempt returns (`Outcome`).

A `Call` is built by `intake.incoming_call` once the request is valid and routed; the attempt
loop updates its counters (attempts, upstream time, spend, budget holds, failures), and what its
spans will say is noted on it as it happens (`request_spans` builds them once the answer is
out). An `OpenStream` owns an upstream response until it is relayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from switchboard.budget.decide import ALLOW, BudgetDecision
from switchboard.config.runtime import ModelRuntime, RouteRuntime, RuntimeConfig
from switchboard.pricing.cost import ZERO, Usage
from switchboard.providers import openai_compat as oai
from switchboard.providers.client_request import Endpoint
from switchboard.providers.sse import SSEEvent, SSEParser
from switchboard.routing.match import RequestFacts
from switchboard.sidecar.upstream import UpstreamResponse


@dataclass(slots=True)
class AttemptNote:
    """One upstream attempt, for its span: when it ran and how it ended."""

    model: ModelRuntime
    number: int
    start_ns: int
    end_ns: int = 0
    error: oai.UpstreamError | None = None
    usage: Usage | None = None
    response_model: str | None = None
    exception: Exception | None = None


@dataclass
class Call:
    """One request in flight.

    The fields after `failures` note what the request's metrics and spans will say; the
    pipeline fills them as things happen and `accounting.finished` records them once the answer
    is out, so that recording costs the request nothing before its answer.
    """

    endpoint: Endpoint
    body: dict[str, object]
    runtime: RuntimeConfig
    facts: RequestFacts
    route: RouteRuntime
    stream: bool
    started: float
    start_ns: int
    upstream_seconds: float = 0.0
    attempts: int = 0
    spent: Decimal = ZERO
    held: Decimal = ZERO
    budget: BudgetDecision = ALLOW
    blocked: BudgetDecision | None = None
    failures: list[tuple[ModelRuntime, oai.UpstreamError]] = field(default_factory=list)
    trace_headers: dict[str, str] | None = None
    """The incoming `traceparent` (and `tracestate`), when the client sent one."""
    cache: str = "bypass"
    tried: list[AttemptNote] = field(default_factory=list)
    events: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    """Span events (name, attributes, time in ns), e.g. a cascade's escalations."""
    answered_by: str | None = None
    """The provider of the answer the client got."""
    usage: Usage | None = None
    response_model: str | None = None
    completion: tuple[str, str | None] | None = None
    """The answer's text and finish reason, kept only when the policy captures content."""
    broken: str | None = None
    """Why a stream that had started broke off."""
    counted: tuple[str, str, int] | None = None
    """(provider, model, status) for the request counter, once an answer was chosen."""
    overhead: float | None = None
    """The sidecar's own seconds before the answer's headers."""
    status: int | None = None
    """The status the client got, once the pipeline returned an answer."""
    exception: Exception | None = None
    """An unexpected error that escaped the pipeline."""

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
