"""The sidecar's span batching: spans encoded on the loop after the step that ended them, the
bytes it sends equal to the official encoder's for the same spans, and OTEL_BSP_* honoured
(batch size, queue limit with drops logged, flush and shutdown). The exporter is the real one
with its HTTP post replaced by a recorder; the sidecar's real export is in
tests/integration/test_otlp_export.py."""

from __future__ import annotations

import asyncio
import gzip
import threading

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from switchboard.telemetry.batching import BatchSettings, SpanBatcher, batch_settings
from switchboard.telemetry.otlp import OTLPSpanExporter
from switchboard.telemetry.tracing import RecordedSpan, Tracing

RESOURCE = Resource.create({"service.name": "shop"})
ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}  # never connected to


class Recorder(OTLPSpanExporter):
    """The real exporter (encoding, gzip), with the POST replaced by a record of the body."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(ENV | (env or {}))
        self.bodies: list[bytes] = []
        self.sent = threading.Condition()

    def _send(self, body: bytes, count: int) -> SpanExportResult:
        with self.sent:
            self.bodies.append(body)
            self.sent.notify_all()
        return SpanExportResult.SUCCESS

    def names(self) -> list[list[str]]:
        """The span names of each body sent."""
        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            out.append(
                [s.name for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]
            )
        return out

    def wait_for(self, bodies: int) -> None:
        with self.sent:
            assert self.sent.wait_for(lambda: len(self.bodies) >= bodies, 10), self.bodies


def tracing_to(recorder: Recorder, **settings: float) -> tuple[Tracing, SpanBatcher]:
    batcher = SpanBatcher(recorder, BatchSettings(**settings))  # type: ignore[arg-type]
    return Tracing(batcher, resource=RESOURCE, scope="switchboard"), batcher


def spans(tracing: Tracing, count: int, prefix: str = "s") -> list[RecordedSpan]:
    out = []
    for n in range(count):
        span = tracing.start(f"{prefix}{n}", kind=SpanKind.SERVER, attributes={"n": n})
        assert isinstance(span, RecordedSpan)
        span.end()
        out.append(span)
    return out


def test_the_bytes_sent_are_the_official_encoders_for_the_same_spans() -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(recorder, schedule_delay=60)
    root = tracing.start("chat gpt-4o", kind=SpanKind.SERVER, attributes={"a": "x", "b": 2})
    child = tracing.start("chat mini", kind=SpanKind.CLIENT, attributes={"c": 1.5}, parent=root)
    child.set_status(Status(StatusCode.ERROR, "429 from upstream"))
    child.add_event("retry", {"after": 1})
    child.end()
    root.set_attributes({"ok": True, "cost": 0.25})
    root.end()
    assert batcher.force_flush()
    assert isinstance(child, RecordedSpan) and isinstance(root, RecordedSpan)
    official = encode_spans([child.readable(), root.readable()]).SerializeToString()
    assert recorder.bodies == [official]
    batcher.shutdown()


def test_gzip_is_applied_to_the_encoded_batch() -> None:
    recorder = Recorder({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    tracing, batcher = tracing_to(recorder, schedule_delay=60)
    ended = spans(tracing, 3)
    assert batcher.force_flush()
    official = encode_spans([s.readable() for s in ended]).SerializeToString()
    assert [gzip.decompress(b) for b in recorder.bodies] == [official]
    batcher.shutdown()


def test_on_the_loop_a_span_is_encoded_after_the_step_that_ended_it() -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(recorder, schedule_delay=60)

    async def step() -> tuple[int, int]:
        spans(tracing, 2)
        waiting_in_step = len(batcher._queue)
        await asyncio.sleep(0)  # the loop runs what the step scheduled
        return waiting_in_step, len(batcher._queue)

    assert asyncio.run(step()) == (0, 2)
    batcher.shutdown()
    assert recorder.names() == [["s0", "s1"]]


def test_full_batches_are_sent_before_the_schedule_delay_and_the_rest_waits() -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(recorder, schedule_delay=60, max_export_batch_size=4)
    spans(tracing, 9)  # no loop: encoded at once
    recorder.wait_for(2)  # 60 s of schedule delay have not passed: full batches woke it
    assert recorder.names() == [["s0", "s1", "s2", "s3"], ["s4", "s5", "s6", "s7"]]
    batcher.shutdown()  # the one left waits for more, or for the end
    assert recorder.names()[2:] == [["s8"]]


def test_spans_beyond_the_queue_size_are_dropped_and_counted_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(
        recorder, schedule_delay=60, max_queue_size=5, max_export_batch_size=100
    )
    spans(tracing, 8)
    batcher.shutdown()
    assert recorder.names() == [[f"s{n}" for n in range(5)]]
    assert "3 spans dropped" in caplog.text
    assert "OTEL_BSP_MAX_QUEUE_SIZE=5" in caplog.text


def test_the_schedule_delay_sends_what_waits() -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(recorder, schedule_delay=0.05)
    spans(tracing, 2)
    recorder.wait_for(1)
    assert recorder.names() == [["s0", "s1"]]
    batcher.shutdown()


def test_shutdown_sends_the_rest_and_later_spans_are_ignored() -> None:
    recorder = Recorder()
    tracing, batcher = tracing_to(recorder, schedule_delay=60)
    spans(tracing, 3)
    batcher.shutdown()
    spans(tracing, 2, prefix="late")
    assert recorder.names() == [["s0", "s1", "s2"]]
    assert not batcher._thread.is_alive()


def test_settings_come_from_otel_bsp_and_bad_values_fall_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert batch_settings({}) == BatchSettings()
    env = {
        "OTEL_BSP_SCHEDULE_DELAY": "250",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_BSP_EXPORT_TIMEOUT": "2000",
    }
    assert batch_settings(env) == BatchSettings(0.25, 100, 10, 2.0)
    bad = batch_settings({"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_BSP_MAX_QUEUE_SIZE": "-1"})
    assert bad == BatchSettings()
    assert "OTEL_BSP_SCHEDULE_DELAY='soon'" in caplog.text
    big = batch_settings({"OTEL_BSP_MAX_QUEUE_SIZE": "8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"})
    assert (big.max_queue_size, big.max_export_batch_size) == (8, 8)
