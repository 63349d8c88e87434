"""The sidecar's spans against the SDK's: the same calls give the same ended spans (names,
kinds, attributes, events, status, parents, resource, scope), and sampling decides alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from switchboard.telemetry.tracing import NoTracing, Tracing

RESOURCE = Resource.create({"service.name": "shop"})
TRACEPARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
Start = Callable[..., trace.Span]


def ours(sampler: sampling.Sampler | None = None) -> tuple[Start, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing = Tracing(
        SimpleSpanProcessor(memory), resource=RESOURCE, sampler=sampler, scope="switchboard"
    )

    def start(name: str, *, parent: trace.Span | None = None, **kw: object) -> trace.Span:
        return tracing.start(name, parent=parent, **kw)  # type: ignore[arg-type]

    return start, memory


def sdks(sampler: sampling.Sampler | None = None) -> tuple[Start, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("switchboard")

    def start(name: str, *, parent: trace.Span | None = None, **kw: object) -> trace.Span:
        if parent is not None:
            kw["context"] = trace.set_span_in_context(parent)
        return tracer.start_span(name, **kw)  # type: ignore[arg-type]

    return start, memory


def request(start: Start) -> None:
    """What the pipeline does with the spans of a request that failed over once."""
    server = start(
        "chat gpt-4o",
        kind=SpanKind.SERVER,
        attributes={"gen_ai.operation.name": "chat", "switchboard.team": ""},
        context=extract(TRACEPARENT),
    )
    server.set_attribute("switchboard.cache", "bypass")
    for attempt, failed in ((1, True), (2, False)):
        client = start(
            "chat gpt-4o-mini",
            parent=server,
            kind=SpanKind.CLIENT,
            attributes={"switchboard.attempt": attempt, "gen_ai.provider.name": "openai"},
        )
        if failed:
            client.set_attribute("error.type", "rate_limit")
            client.set_status(Status(StatusCode.ERROR, "429 from upstream"))
        else:
            client.set_attributes({"gen_ai.usage.input_tokens": 12, "ok": True})
        client.end()
    server.add_event("cascade.escalate", {"model": "gpt-4o-mini", "reason": "json"})
    try:
        raise ValueError("boom")
    except ValueError as exc:
        server.record_exception(exc)
    server.set_status(StatusCode.ERROR, "failed")
    server.set_attribute("switchboard.cost_usd", 0.0012)
    server.end()
    server.set_attribute("after", "end")  # ignored: the span has ended
    server.end()  # a second end changes nothing


def shape(span: ReadableSpan) -> dict[str, object]:
    assert span.context is not None
    events = [
        (e.name, {k: v for k, v in e.attributes.items() if k != "exception.stacktrace"})
        for e in span.events
    ]
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes),
        "events": events,
        "status": (span.status.status_code, span.status.description),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope and span.instrumentation_scope.name,
        "sampled": span.context.trace_flags.sampled,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def test_the_same_calls_end_in_the_same_spans_as_the_sdks() -> None:
    (start, memory), (sdk_start, sdk_memory) = ours(), sdks()
    request(start)
    request(sdk_start)
    mine, theirs = memory.get_finished_spans(), sdk_memory.get_finished_spans()
    assert [shape(s) for s in mine] == [shape(s) for s in theirs]
    assert len(mine) == 3


def test_children_share_the_remote_trace_and_point_at_their_parent() -> None:
    start, memory = ours()
    request(start)
    one, two, server = memory.get_finished_spans()
    assert server.context and one.context and two.context and server.parent
    assert server.parent.span_id == 0xB7AD6B7169203331 and server.parent.is_remote
    assert {s.context.trace_id for s in (server, one, two) if s.context} == {
        0x0AF7651916CD43DD8448EB211C80319C
    }
    assert one.parent == two.parent == server.context
    assert len({s.context.span_id for s in (server, one, two) if s.context}) == 3
    assert server.start_time and server.end_time and server.start_time <= server.end_time


def test_a_new_trace_without_traceparent() -> None:
    start, memory = ours()
    start("chat x", kind=SpanKind.SERVER, attributes={}).end()
    (span,) = memory.get_finished_spans()
    assert span.parent is None and span.context and span.context.trace_id != 0


def test_the_exception_event_matches_the_sdks_stack_trace_too() -> None:
    (start, memory), (sdk_start, sdk_memory) = ours(), sdks()
    for begin in (start, sdk_start):
        span = begin("s", kind=SpanKind.INTERNAL, attributes={})
        try:
            raise KeyError("k")
        except KeyError as exc:
            span.record_exception(exc, {"extra": 1})
        span.end()
    (mine,), (theirs,) = memory.get_finished_spans(), sdk_memory.get_finished_spans()
    stack = mine.events[0].attributes["exception.stacktrace"]
    assert isinstance(stack, str) and "KeyError: 'k'" in stack
    assert dict(mine.events[0].attributes) == dict(theirs.events[0].attributes)


def test_a_none_value_is_no_attribute() -> None:
    # The spec does not allow null values; the SDK keeps them, an exporter then drops them.
    start, memory = ours()
    span = start("s", kind=SpanKind.INTERNAL, attributes={"a": None, "b": 1})
    span.set_attribute("c", None)
    span.set_attributes({"d": None, "e": "x"})
    span.end()
    assert dict(memory.get_finished_spans()[0].attributes) == {"b": 1, "e": "x"}


def test_ok_is_final_as_in_the_sdk() -> None:
    start, memory = ours()
    span = start("s", kind=SpanKind.INTERNAL, attributes={})
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "later"))
    span.end()
    assert memory.get_finished_spans()[0].status.status_code is StatusCode.OK


@pytest.mark.parametrize(
    ("sampler", "exported"),
    [
        (sampling.ALWAYS_OFF, 0),
        (sampling.ParentBased(sampling.ALWAYS_OFF), 3),  # the remote parent was sampled
        (sampling.TraceIdRatioBased(0.0), 0),
        (sampling.TraceIdRatioBased(1.0), 3),
    ],
)
def test_sampling_decides_as_the_sdk_does(sampler: sampling.Sampler, exported: int) -> None:
    (start, memory), (sdk_start, sdk_memory) = ours(sampler), sdks(sampler)
    request(start)
    request(sdk_start)
    assert len(memory.get_finished_spans()) == len(sdk_memory.get_finished_spans()) == exported


def test_an_unsampled_remote_parent_is_followed_by_default() -> None:
    start, memory = ours()
    unsampled = extract({"traceparent": TRACEPARENT["traceparent"][:-2] + "00"})
    server = start("s", kind=SpanKind.SERVER, attributes={}, context=unsampled)
    child = start("c", kind=SpanKind.CLIENT, attributes={}, parent=server)
    assert not server.is_recording() and not child.is_recording()
    child.end()
    server.end()
    assert memory.get_finished_spans() == ()


def test_no_tracing_records_nothing() -> None:
    span = NoTracing().start("s", kind=SpanKind.SERVER, attributes={}, start_time=1)
    assert not span.is_recording()


def test_a_span_starts_at_the_time_given() -> None:
    memory = InMemorySpanExporter()
    tracing = Tracing(SimpleSpanProcessor(memory))
    server = tracing.start("s", kind=SpanKind.SERVER, attributes={}, start_time=1_000)
    child = tracing.start("c", kind=SpanKind.CLIENT, attributes={}, parent=server, start_time=2)
    child.end(3)
    server.end(4_000)
    assert [(s.name, s.start_time, s.end_time) for s in memory.get_finished_spans()] == [
        ("c", 2, 3),
        ("s", 1_000, 4_000),
    ]
