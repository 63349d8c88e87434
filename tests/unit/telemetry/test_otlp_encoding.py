"""The OTLP encoder against the official one, byte for byte, on spans a real SDK provider made."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

from switchboard.telemetry.otlp_encoding import SpanEncoder, encode_export_request

REMOTE = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1"), ("rojo", "00f067aa0ba902b7")]),
)
LINKED = SpanContext(trace_id=0x1, span_id=0xFFFFFFFFFFFFFFFF, is_remote=False)
EVERY_TYPE: dict[str, object] = {
    "str": "gpt-4o-mini",
    "str.empty": "",
    "str.unicode": "Zürich 東京 🚀",
    "bool.true": True,
    "bool.false": False,
    "int.zero": 0,
    "int.one": 1,
    "int.negative": -1,
    "int.min": -(2**63),
    "int.max": 2**63 - 1,
    "int.too-big": 2**64,  # protobuf refuses it: the official encoder drops the pair
    "float": 0.000052,
    "float.zero": 0.0,
    "float.negative-zero": -0.0,
    "float.negative": -1.5e300,
    "float.inf": math.inf,
    "float.nan": math.nan,
    "seq.str": ["a", "b", ""],
    "seq.bool": [True, False],
    "seq.int": [1, -2, 2**63 - 1],
    "seq.float": [0.5, -0.0],
    "seq.empty": [],
    "bytes": b"\x00\xff",
}


@contextmanager
def recording(
    resource: Resource | None = None, limits: SpanLimits | None = None
) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({}), span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def assert_official_bytes(spans: list[ReadableSpan]) -> bytes:
    ours = encode_export_request(spans)
    assert ours == encode_spans(spans).SerializeToString()
    return ours


def varied_spans() -> list[ReadableSpan]:
    """Spans of two resources and three scopes, interleaved, with every feature the SDK has."""
    app = Resource.create({"service.name": "switchboard-sidecar", "pod.count": 3})
    other = Resource({"service.name": "other", "host.arch": "amd64"}, schema_url="https://s/1.2")
    limits = SpanLimits(
        max_span_attributes=3, max_event_attributes=1, max_link_attributes=1, max_events=2
    )
    with recording(app) as (provider, exporter), recording(other, limits) as (second, exporter2):
        tracer = provider.get_tracer("switchboard.sidecar", "0.1.0")
        scoped = provider.get_tracer(
            "scoped", schema_url="https://opentelemetry.io/schemas/1.26.0", attributes={"x": 1}
        )
        limited = second.get_tracer("limited")
        remote = trace.set_span_in_context(NonRecordingSpan(REMOTE))
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", context=remote, kind=SpanKind.SERVER, attributes=EVERY_TYPE
        ) as server:
            with tracer.start_as_current_span("chat p-mini", kind=SpanKind.CLIENT) as client:
                client.set_attribute("switchboard.attempt", 1)
                client.set_status(Status(StatusCode.ERROR, "UpstreamError: HTTP 503 ✗"))
                client.add_event("retry", {"attempt": 2, "backoff": 0.2}, timestamp=1_000)
            try:
                raise ValueError("bad answer")
            except ValueError as error:
                server.record_exception(error, attributes={"extra": True})
            server.set_status(Status(StatusCode.OK))
        with limited.start_as_current_span(
            "limited",
            kind=SpanKind.PRODUCER,
            attributes={f"a{i}": i for i in range(5)},
            links=[Link(REMOTE, {"l1": "x", "l2": "y"}), Link(LINKED)],
        ) as span:
            for i in range(4):
                span.add_event(f"e{i}", {"k1": i, "k2": -i})
        with scoped.start_as_current_span("", kind=SpanKind.CONSUMER):
            pass
        with (
            tracer.start_as_current_span("internal", context=remote),
            tracer.start_as_current_span("nested-local"),
        ):
            pass
        spans = [*exporter.get_finished_spans(), *exporter2.get_finished_spans()]
    # Interleave the resources, so that grouping matters: A, B, A, ...
    first, second_spans = spans[:2], spans[2:]
    return [*first[:1], *second_spans[-1:], *first[1:], *second_spans[:-1]]


def test_varied_spans_encode_to_the_official_bytes() -> None:
    spans = varied_spans()
    assert len(spans) == 6
    assert len(assert_official_bytes(spans)) > 1000


def test_each_span_alone_encodes_to_the_official_bytes() -> None:
    for span in varied_spans():
        assert_official_bytes([span])


def test_no_spans_is_an_empty_request() -> None:
    assert assert_official_bytes([]) == b""


def test_decoded_request_has_the_spans_fields_and_grouping() -> None:
    spans = varied_spans()
    request = ExportTraceServiceRequest.FromString(encode_export_request(spans))

    services = [
        {a.key: a.value.string_value for a in r.resource.attributes}.get("service.name")
        for r in request.resource_spans
    ]
    assert services == ["switchboard-sidecar", "other"]
    app, other = request.resource_spans
    assert other.schema_url == "https://s/1.2"
    assert [s.scope.name for s in app.scope_spans] == ["switchboard.sidecar", "scoped"]
    sidecar_scope, scoped = app.scope_spans
    assert sidecar_scope.scope.version == "0.1.0"
    assert scoped.schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert [(a.key, a.value.int_value) for a in scoped.scope.attributes] == [("x", 1)]

    by_name = {s.name: s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans}
    server, client = by_name["chat gpt-4o-mini"], by_name["chat p-mini"]
    assert server.kind == 2 and client.kind == 3  # SERVER, CLIENT
    assert server.trace_id == REMOTE.trace_id.to_bytes(16, "big")
    assert server.parent_span_id == REMOTE.span_id.to_bytes(8, "big")
    assert server.trace_state == "vendor=v1,rojo=00f067aa0ba902b7"
    assert server.flags == 0x300  # has is-remote, is remote
    assert client.parent_span_id == server.span_id
    assert client.flags == 0x100
    assert client.status.code == 2 and client.status.message == "UpstreamError: HTTP 503 ✗"
    assert server.status.code == 1
    assert client.end_time_unix_nano >= client.start_time_unix_nano > 0
    (retry,) = client.events
    assert retry.name == "retry" and retry.time_unix_nano == 1_000
    assert [(a.key, a.value.int_value) for a in retry.attributes][:1] == [("attempt", 2)]

    values = {a.key: a.value for a in server.attributes}
    assert "int.too-big" not in values
    assert values["int.min"].int_value == -(2**63)
    assert values["int.negative"].int_value == -1
    assert values["bool.false"].HasField("bool_value") and not values["bool.false"].bool_value
    assert math.copysign(1, values["float.negative-zero"].double_value) == -1
    assert math.isnan(values["float.nan"].double_value)
    assert [v.int_value for v in values["seq.int"].array_value.values] == [1, -2, 2**63 - 1]
    assert values["seq.empty"].HasField("array_value")
    assert values["bytes"].bytes_value == b"\x00\xff"
    (exception,) = server.events
    assert {a.key for a in exception.attributes} >= {"exception.type", "exception.message"}

    limited = by_name["limited"]
    assert limited.dropped_attributes_count == 2
    assert limited.dropped_events_count == 2
    assert [e.dropped_attributes_count for e in limited.events] == [1, 1]
    first_link, second_link = limited.links
    assert first_link.span_id == REMOTE.span_id.to_bytes(8, "big")
    assert first_link.dropped_attributes_count == 1
    assert (first_link.flags, second_link.flags) == (0x300, 0x100)
    assert by_name[""].kind == 5  # CONSUMER


def test_spans_of_equal_resources_group_together_in_first_seen_order() -> None:
    """Two providers with equal resources (distinct objects) and a third one, interleaved."""
    with (
        recording(Resource.create({"service.name": "a"})) as (one, first),
        recording(Resource.create({"service.name": "b"})) as (other, second),
        recording(Resource.create({"service.name": "a"})) as (again, third),
    ):
        for provider in (one, other, again, other, one):
            provider.get_tracer("t").start_span("s").end()
        spans = [*first.get_finished_spans(), *second.get_finished_spans()]
        spans += third.get_finished_spans()
    order = [spans[0], spans[2], spans[4], spans[3], spans[1]]
    request = ExportTraceServiceRequest.FromString(assert_official_bytes(order))
    assert [len(r.scope_spans[0].spans) for r in request.resource_spans] == [3, 2]


def test_a_repeated_encoder_matches_a_fresh_one_batch_after_batch() -> None:
    encoder = SpanEncoder(cache_size=3)  # small: the caches fill and restart
    spans = varied_spans()
    for _ in range(3):
        assert encoder.encode(spans) == encode_spans(spans).SerializeToString()


def test_pairs_equal_as_python_values_keep_their_own_types() -> None:
    """`("k", True) == ("k", 1) == ("k", 1.0)`: the cache must not hand one's bytes to another."""
    encoder = SpanEncoder()
    with recording() as (provider, exporter):
        tracer = provider.get_tracer("t")
        for value in (True, 1, 1.0, "1", (1,), (True,), (1.0,), 0, False, 0.0):
            tracer.start_span("s", attributes={"k": value}).end()
        spans = list(exporter.get_finished_spans())
    for span in spans:
        assert encoder.encode([span]) == encode_spans([span]).SerializeToString()
    request = ExportTraceServiceRequest.FromString(encoder.encode(spans))
    decoded = request.resource_spans[0].scope_spans[0].spans
    kinds = [s.attributes[0].value.WhichOneof("value") for s in decoded]
    assert kinds[:3] == ["bool_value", "int_value", "double_value"]


def test_a_hundred_spans_encode_to_the_official_bytes() -> None:
    with recording() as (provider, exporter):
        tracer = provider.get_tracer("t")
        for i in range(100):
            tracer.start_span(f"s{i}").end()
        spans = list(exporter.get_finished_spans())
    assert SpanEncoder().encode(spans) == encode_spans(spans).SerializeToString()


SCALARS = st.one_of(
    st.text(),
    st.text(st.characters(categories=["Cs", "Lu"]), max_size=3),  # lone surrogates too
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
)
ATTRIBUTE_VALUES = st.one_of(
    SCALARS,
    st.lists(st.text(max_size=8), max_size=4),
    st.lists(st.booleans(), max_size=4),
    st.lists(st.integers(min_value=-(2**64), max_value=2**64), max_size=4),
    st.lists(st.floats(), max_size=4),
    st.lists(st.one_of(SCALARS, st.none()), max_size=3),  # the SDK lets mixed ones through
    st.dictionaries(st.text(min_size=1, max_size=4), SCALARS, max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(
    span_attributes=st.dictionaries(
        st.text(st.characters(exclude_categories=[]), min_size=1, max_size=12),
        ATTRIBUTE_VALUES,
        max_size=8,
    ),
    event_attributes=st.dictionaries(st.text(min_size=1), ATTRIBUTE_VALUES, max_size=3),
    resource_attributes=st.dictionaries(st.text(min_size=1), ATTRIBUTE_VALUES, max_size=3),
)
def test_random_attributes_encode_to_the_official_bytes(
    span_attributes: Mapping[str, object],
    event_attributes: Mapping[str, object],
    resource_attributes: Mapping[str, object],
) -> None:
    resource = Resource(resource_attributes)  # type: ignore[arg-type]
    with recording(resource) as (provider, exporter):
        span = provider.get_tracer("t").start_span("s", attributes=as_attributes(span_attributes))
        span.add_event("e", as_attributes(event_attributes))
        span.add_link(LINKED, as_attributes(event_attributes))
        span.end()
        spans = list(exporter.get_finished_spans())
    encoder = SpanEncoder()
    assert encoder.encode(spans) == encode_spans(spans).SerializeToString()
    assert encoder.encode(spans) == encode_spans(spans).SerializeToString()  # from the cache


def as_attributes(values: Mapping[str, object]) -> Attributes:
    return values  # type: ignore[return-value]


def test_lone_surrogates_in_attributes_are_dropped_as_the_official_encoder_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with recording() as (provider, exporter):
        attributes = {"ok": "yes", "bad": "\ud800", "\udfffkey": "v"}
        provider.get_tracer("t").start_span("s", attributes=attributes).end()
        spans = list(exporter.get_finished_spans())
    request = ExportTraceServiceRequest.FromString(assert_official_bytes(spans))
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in span.attributes] == ["ok"]
    assert "'bad' not exported" in caplog.text
