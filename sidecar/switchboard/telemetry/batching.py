"""Edge: batching the sidecar's spans for OTLP export — each span encoded on the event loop
once the answer that ended it is out, batches sent by one thread.

Why not the SDK's `BatchSpanProcessor`: it gives its export thread whole spans, and encoding a
batch of 512 there takes milliseconds of CPU with the GIL held, however it is sliced: requests
that arrive meanwhile wait for the GIL (the c=1 and open-loop p99 of a sidecar with spans on,
bench/README.md). It also builds a `ReadableSpan` and calls `os.getpid()` for every span.
Here a span is encoded (`SpanEncoder.span_bytes`, ~10 µs) by the event loop itself, in a
callback scheduled when the span ends (`call_soon`): it runs after the current step of the
loop, so a request's spans are encoded after its answer was written, before the loop reads
the next request. The thread only joins bytes, compresses (zlib releases the GIL) and posts.

The OTEL_BSP_* variables mean what they mean for the SDK: the export thread wakes every
SCHEDULE_DELAY ms, or sooner once MAX_EXPORT_BATCH_SIZE spans wait, and sends what waits in
batches of at most that size; at most MAX_QUEUE_SIZE spans wait, later ones are dropped and
counted in the log; EXPORT_TIMEOUT bounds `force_flush` and `shutdown`. Spans must end on the
event loop's thread (the sidecar's one loop) or, with no loop running, they are encoded at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.telemetry.otlp import OTLPSpanExporter
from switchboard.telemetry.otlp_encoding import Encoded, SpanEncoder
from switchboard.telemetry.tracing import RecordedSpan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSettings:
    """What OTEL_BSP_* ask for (the SDK's defaults)."""

    schedule_delay: float = 5.0
    """Seconds between two exports at most."""
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout: float = 30.0
    """Seconds `force_flush` and `shutdown` wait at most."""


def batch_settings(env: Mapping[str, str]) -> BatchSettings:
    """Settings from OTEL_BSP_*; a value that is not a positive whole number is logged and
    the default used; a batch size above the queue size is the queue size."""
    default = BatchSettings()

    def number(name: str, fallback: int) -> int:
        raw = env.get(f"OTEL_BSP_{name}", "").strip()
        if not raw:
            return fallback
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            log.warning(
                "OTEL_BSP_%s=%r is not a positive whole number: using %d", name, raw[:40], fallback
            )
            return fallback
        return value

    queue = number("MAX_QUEUE_SIZE", default.max_queue_size)
    batch = number("MAX_EXPORT_BATCH_SIZE", default.max_export_batch_size)
    if batch > queue:
        log.warning(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=%d exceeds the queue size: using %d", batch, queue
        )
        batch = queue
    return BatchSettings(
        schedule_delay=number("SCHEDULE_DELAY", int(default.schedule_delay * 1000)) / 1000,
        max_queue_size=queue,
        max_export_batch_size=batch,
        export_timeout=number("EXPORT_TIMEOUT", int(default.export_timeout * 1000)) / 1000,
    )


class SpanBatcher:
    """The `SpanSink` of the sidecar's `Tracing` when spans are exported over OTLP."""

    def __init__(
        self,
        exporter: OTLPSpanExporter,
        settings: BatchSettings | None = None,
        *,
        encoder: SpanEncoder | None = None,
    ) -> None:
        self.settings = settings or BatchSettings()
        self._exporter = exporter
        self._encoder = encoder or SpanEncoder()
        self._ended: list[RecordedSpan] = []  # on the loop's thread, not encoded yet
        self._queue: deque[Encoded] = deque()  # encoded, waiting for the export thread
        self._dropped = 0
        self._wake = threading.Event()
        self._flushes: list[threading.Event] = []  # flushes asked for, done at the next wake
        self._lock = threading.Lock()  # guards _flushes and _dropped
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def add(self, span: RecordedSpan) -> None:
        """An ended span; encoded after the loop's current step (at once with no loop)."""
        if self._stopping:
            return
        if not self._ended:
            try:
                asyncio.get_running_loop().call_soon(self._encode_ended)
            except RuntimeError:  # no loop in this thread: nothing to wait for
                self._ended.append(span)
                self._encode_ended()
                return
        self._ended.append(span)

    def _encode_ended(self) -> None:
        ended, self._ended = self._ended, []
        queue, limit = self._queue, self.settings.max_queue_size
        dropped = 0
        for span in ended:
            if len(queue) >= limit:
                dropped += 1
                continue
            try:
                queue.append(
                    (span.resource, span.instrumentation_scope, self._encoder.span_bytes(span))
                )
            except Exception:
                log.exception("span %r could not be encoded, dropped", span.name)
        if dropped:
            with self._lock:
                self._dropped += dropped
        if len(queue) >= self.settings.max_export_batch_size:
            self._wake.set()

    def _run(self) -> None:
        while True:
            woken = self._wake.wait(self.settings.schedule_delay)
            self._wake.clear()
            with self._lock:
                flushes, self._flushes = self._flushes, []
                dropped, self._dropped = self._dropped, 0
                stopping = self._stopping
            if dropped:
                log.warning(
                    "%d spans dropped: more than OTEL_BSP_MAX_QUEUE_SIZE=%d waited for export",
                    dropped,
                    self.settings.max_queue_size,
                )
            # Woken by a full batch: send full batches only (the rest waits for more to join it).
            self._export_waiting(full_only=woken and not flushes and not stopping)
            for done in flushes:
                done.set()
            if stopping:
                return

    def _export_waiting(self, *, full_only: bool = False) -> None:
        queue, size = self._queue, self.settings.max_export_batch_size
        while len(queue) >= (size if full_only else 1):
            batch = [queue.popleft() for _ in range(min(size, len(queue)))]
            try:
                self._exporter.export_encoded(batch)
            except Exception:
                log.exception("OTLP export of %d spans failed", len(batch))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every span ended so far; whether that was done within the timeout."""
        if self._ended:
            self._encode_ended()
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(min(timeout_millis / 1000, self.settings.export_timeout))

    def shutdown(self) -> None:
        """Export what is left (within the export timeout), then stop; later spans are
        ignored."""
        if self._ended:
            self._encode_ended()
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join(self.settings.export_timeout)
        self._exporter.shutdown()
