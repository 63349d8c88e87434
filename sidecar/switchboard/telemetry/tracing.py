"""Edge: the sidecar's spans — recorded on the event loop in plain dicts, and handed, when they
end, to the sidecar's `telemetry.batching.SpanBatcher` as they are, or to any OpenTelemetry
SDK span processor as `ReadableSpan`s (tests use the SDK's in-memory exporter).

Why not the SDK's own `Span`: it checks every attribute value against the whole attribute type
system and takes a lock on every call, which a multi-threaded application needs and the
sidecar (one event loop) does not. For the two spans of a request that was ~50 µs, a tenth of
a busy sidecar's CPU; these spans cost a fifth of it. The sidecar sets only str, bool, int and
float values, and None is dropped as the SDK drops it.

Sampling is the SDK's sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on), asked once
per local trace, at its root span; a child span follows its parent. That is the decision every
built-in sampler would make for the child: ParentBased follows the parent, TraceIdRatioBased
decides by the trace id the two share, always_on and always_off do not look.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, sampling
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
UNSET = Status(StatusCode.UNSET)


class SpanSink(Protocol):
    """Takes the sidecar's ended spans as they are (`telemetry.batching.SpanBatcher`)."""

    def add(self, span: RecordedSpan) -> None: ...

    def shutdown(self) -> None: ...

    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...


class Tracing:
    """Where the sidecar's spans go: `start` one, and it reaches `processor` when it ends, as
    a `ReadableSpan` for an SDK span processor, or as it is for a `SpanSink`."""

    records = True

    def __init__(
        self,
        processor: SpanProcessor | SpanSink,
        *,
        resource: Resource | None = None,
        sampler: sampling.Sampler | None = None,
        scope: str = "switchboard.sidecar",
    ) -> None:
        self.processor = processor
        self.resource = resource or Resource.create({})
        self.sampler = sampler or sampling._get_from_env_or_default()
        self.scope = InstrumentationScope(scope)
        self.ended: Callable[[RecordedSpan], None] = (
            self._to_sdk if isinstance(processor, SpanProcessor) else processor.add
        )

    def _to_sdk(self, span: RecordedSpan) -> None:
        assert isinstance(self.processor, SpanProcessor)
        self.processor.on_end(span.readable())

    def start(
        self,
        name: str,
        *,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
        parent: trace.Span | None = None,
        context: Context | None = None,
        start_time: int | None = None,
    ) -> trace.Span:
        """A started span, child of `parent` (a span of this sidecar) or else of the remote
        span in `context` (an incoming traceparent), else the root of a new trace; it started
        at `start_time` (ns since the epoch), or now."""
        if parent is not None:
            if not isinstance(parent, RecordedSpan):
                return trace.INVALID_SPAN  # the parent was not sampled: neither is the child
            up = parent.get_span_context()
            return RecordedSpan(
                self, name, kind, attributes, up.trace_id, up.trace_state, up, start_time
            )
        remote = trace.get_current_span(context).get_span_context() if context else None
        if remote is not None and not remote.is_valid:
            remote = None
        trace_id = remote.trace_id if remote else random.getrandbits(128)
        decision = self.sampler.should_sample(context, trace_id, name, kind, attributes)
        if decision.decision is not sampling.Decision.RECORD_AND_SAMPLE:
            return trace.INVALID_SPAN  # (RECORD_ONLY too: no built-in sampler says it)
        if decision.attributes:
            attributes = {**attributes, **decision.attributes}
        return RecordedSpan(
            self, name, kind, attributes, trace_id, decision.trace_state, remote, start_time
        )

    def shutdown(self) -> None:
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.processor.force_flush(timeout_millis)


class NoTracing:
    """No exporter configured: every span is the invalid, non-recording one."""

    records = False

    def start(
        self,
        name: str,
        *,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
        parent: trace.Span | None = None,
        context: Context | None = None,
        start_time: int | None = None,
    ) -> trace.Span:
        return trace.INVALID_SPAN

    def shutdown(self) -> None:
        pass


class RecordedSpan(trace.Span):
    """A sampled span of this sidecar, open until `end`. Once ended, its public fields are
    those of a `ReadableSpan` (what an OTLP encoder reads): treat them as read-only."""

    links: tuple[()] = ()
    dropped_attributes = dropped_events = dropped_links = 0

    def __init__(
        self,
        tracing: Tracing,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
        trace_id: int,
        trace_state: trace.TraceState | None,
        parent: SpanContext | None,
        start_time: int | None = None,
    ) -> None:
        self._tracing = tracing
        self.name = name
        self.kind = kind
        self.attributes = {k: v for k, v in attributes.items() if v is not None}
        self.context = SpanContext(trace_id, random.getrandbits(64), False, SAMPLED, trace_state)
        self.parent = parent
        self.events: list[Event] = []
        self.status = UNSET
        self.start_time = start_time or time.time_ns()
        self.end_time: int | None = None
        self.resource = tracing.resource
        self.instrumentation_scope = tracing.scope

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.end_time is None and value is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self.end_time is None:
            self.attributes.update((k, v) for k, v in attributes.items() if v is not None)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            self.events.append(Event(name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final; a Status object keeps its own description.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """As the SDK records one: an `exception` event with the semantic-convention fields."""
        kind = type(exception)
        module = kind.__module__
        values: dict[str, AttributeValue] = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        values.update(attributes or {})
        self.add_event("exception", values, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or time.time_ns()
        self._tracing.ended(self)

    def readable(self) -> ReadableSpan:
        """The ended span as the SDK's span processors take it."""
        return ReadableSpan(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=self.resource,
            attributes=self.attributes,
            events=self.events,
            kind=self.kind,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=self.instrumentation_scope,
        )
