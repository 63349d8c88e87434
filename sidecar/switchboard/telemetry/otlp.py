"""Edge: OTLP/HTTP span export — the exporter the sidecar's `SpanBatcher` feeds.

`OTLPSpanExporter` posts batches over one keep-alive `http.client` connection, configured by
the standard OTEL_EXPORTER_OTLP_* variables, with the encoding of `otlp_encoding` (no protobuf,
no `requests`). Spans come encoded already (`export_encoded`, from `batching`); gzip runs in
slices with sleeps between them (`Pacer`), so that the exporter thread takes at most a quarter
of the core while it compresses a batch.
Header values may hold credentials: they are never logged nor put into an exception.
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.trace.export import SpanExportResult

from switchboard.telemetry.otlp_encoding import Encoded, SpanEncoder

log = logging.getLogger(__name__)

# ---- configuration --------------------------------------------------------------------------

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_TIMEOUT = 10.0
RETRYABLE = frozenset({429, 502, 503, 504})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what may not be in a header value


class ExporterConfigError(ValueError):
    """OTEL_EXPORTER_OTLP_* cannot be used (the message holds no header value)."""


@dataclass(frozen=True)
class ExportSettings:
    """What OTEL_EXPORTER_OTLP_(TRACES_)* ask for."""

    endpoint: str = DEFAULT_ENDPOINT
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold API keys
    timeout: float = DEFAULT_TIMEOUT
    compression: Literal["gzip", "none"] = "none"
    certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None


def export_settings(env: Mapping[str, str]) -> ExportSettings:
    """Settings from the standard variables; a TRACES_ one wins over the generic one. Values
    that cannot be used are logged (without header values) and replaced by the default."""

    def pick(name: str) -> str:
        traces = env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}", "").strip()
        return traces or env.get(f"OTEL_EXPORTER_OTLP_{name}", "").strip()

    protocol = pick("PROTOCOL")
    if protocol and protocol != "http/protobuf":
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: spans are exported over "
            "http/protobuf only",
            protocol[:40],
        )
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        endpoint = f"{base.removesuffix('/')}/v1/traces" if base else DEFAULT_ENDPOINT
    raw_timeout, timeout = pick("TIMEOUT"), DEFAULT_TIMEOUT
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = 0.0
        if not 0 < timeout < float("inf"):
            log.warning("OTLP timeout %r is not a number of seconds: using 10", raw_timeout[:40])
            timeout = DEFAULT_TIMEOUT
    compression = pick("COMPRESSION").lower() or "none"
    if compression not in ("gzip", "none"):
        log.warning("OTLP compression %r is not supported: sending uncompressed", compression)
        compression = "none"
    return ExportSettings(
        endpoint=endpoint,
        headers=parse_headers(pick("HEADERS")),
        timeout=timeout,
        compression="gzip" if compression == "gzip" else "none",
        certificate=pick("CERTIFICATE") or None,
        client_certificate=pick("CLIENT_CERTIFICATE") or None,
        client_key=pick("CLIENT_KEY") or None,
    )


def parse_headers(raw: str) -> dict[str, str]:
    """`k1=v1,k2=v2` (URL-encoded) as lower-case names to values; a bad entry is logged by its
    position only, since it may hold a credential."""
    headers: dict[str, str] = {}
    for position, entry in enumerate(raw.split(","), 1):
        if not entry.strip():
            continue
        name, equals, value = entry.partition("=")
        name, value = unquote(name).strip().lower(), unquote(value).strip()
        if not equals or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            log.warning("OTLP headers: entry %d is not a valid name=value pair, ignored", position)
            continue
        headers[name] = value
    return headers


def retry_delay(attempt: int, retry_after: str | None, *, now: float, jitter: float) -> float:
    """Seconds to wait before retry `attempt` (0, 1, ...): the server's Retry-After (seconds
    or an HTTP date) when it gives one, else 1 s doubling, times `jitter` (about 0.8-1.2)."""
    if retry_after:
        value = retry_after.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError):
                seconds = float("nan")
        if seconds == seconds and seconds != float("inf"):  # neither NaN nor infinite
            return max(seconds, 0.0)
    return float(2**attempt) * jitter


# ---- the exporter ---------------------------------------------------------------------------

# A real sleep: time.sleep(0) releases the GIL but, with both threads on one core, this thread
# may take it back before the waiting one runs.
GIL_YIELD_SECONDS = 0.0002
EXPORT_SHARE = 0.25
"""The most of a core the exporter takes while it compresses a batch. When the exporter thread
still encoded whole batches, one that slept only 0.2 ms between 0.8 ms slices held the core four
fifths of the time for the tens of milliseconds a batch took, and requests arriving meanwhile
queued up (1,000 req/s p99: 4.3 ms, against 2.7 ms with no encoding at all; 3.4 ms at this
share); encoding is now the event loop's (`batching`), gzip is still paced."""
_USER_AGENT = "switchboard-otlp-exporter"


class Pacer:
    """Called between slices of work: sleeps long enough that the work takes at most `share`
    of a core (and at least `GIL_YIELD_SECONDS`, so that the event loop can take the GIL)."""

    def __init__(
        self,
        share: float = EXPORT_SHARE,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rest = (1 - share) / share
        self._clock, self._sleep = clock, sleep
        self._since = clock()

    def __call__(self) -> None:
        worked = self._clock() - self._since
        self._sleep(max(GIL_YIELD_SECONDS, worked * self._rest))
        self._since = self._clock()


def _gzip(body: bytes, pause: Callable[[], None]) -> bytes:
    """gzip in 64 KiB slices (about 0.3 ms each at level 1, which compresses spans nearly as
    well as level 6 at half the CPU), with `pause()` between them."""
    packer = zlib.compressobj(1, wbits=31)
    view = memoryview(body)
    out = []
    for start in range(0, len(body), 65536):
        if start:
            pause()
        out.append(packer.compress(view[start : start + 65536]))
    out.append(packer.flush())
    return b"".join(out)


class OTLPSpanExporter:
    """OTLP/HTTP protobuf over one keep-alive connection (standard library only). Retries 429,
    502, 503, 504 and connection errors with backoff within the timeout; another status fails
    the batch at once. Problems are logged once per kind until an export succeeds again."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.settings = settings = export_settings(env)
        url = urlsplit(settings.endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ExporterConfigError(
                "OTLP traces endpoint must be an http:// or https:// URL with a host"
            )
        try:
            port = url.port
        except ValueError as error:
            raise ExporterConfigError("OTLP traces endpoint has an invalid port") from error
        netloc = url.hostname if port is None else f"{url.hostname}:{port}"
        self.target = f"{url.scheme}://{netloc}{url.path}"  # for logs: no userinfo, no query
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if not self._path.isascii() or _CONTROL.search(self._path) or " " in self._path:
            raise ExporterConfigError("OTLP traces endpoint path must be URL-encoded ASCII")
        self._connection = self._connection_to(url.scheme, url.hostname, port)
        headers = {"content-type": "application/x-protobuf", "user-agent": _USER_AGENT}
        headers.update(settings.headers)
        if settings.compression == "gzip":
            headers.setdefault("content-encoding", "gzip")
        self._headers = {name: value.encode() for name, value in headers.items()}
        self._encoder = SpanEncoder()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reused = False  # the connection has carried an exchange: it may have gone stale
        self._problem: str | None = None  # what the last export failed with, logged once
        self._refused: set[int] = set()  # non-retryable statuses logged so far

    def _connection_to(
        self, scheme: str, host: str, port: int | None
    ) -> http.client.HTTPConnection:
        timeout = self.settings.timeout
        if scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=timeout)
        import ssl

        settings = self.settings
        try:
            context = ssl.create_default_context(cafile=settings.certificate)
            if settings.client_certificate:
                context.load_cert_chain(settings.client_certificate, settings.client_key)
        except (OSError, ssl.SSLError) as error:
            raise ExporterConfigError(f"OTLP TLS files cannot be used: {error}") from error
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)

    def export_encoded(self, spans: Sequence[Encoded]) -> SpanExportResult:
        """Export spans encoded beforehand (`SpanEncoder.span_bytes`, see `batching`)."""
        if self._stop.is_set():
            return SpanExportResult.FAILURE
        with self._lock:
            try:
                body = self._encoder.request(spans)
            except Exception:
                log.exception("OTLP: %d spans could not be encoded, dropped", len(spans))
                return SpanExportResult.FAILURE
            if self.settings.compression == "gzip":
                body = _gzip(body, Pacer())
            return self._send(body, len(spans))

    def _send(self, body: bytes, count: int) -> SpanExportResult:
        deadline = time.monotonic() + self.settings.timeout
        attempt = 0
        while True:
            stale = self._reused
            try:
                status, retry_after = self._post(body, deadline - time.monotonic())
            except (OSError, http.client.HTTPException) as error:
                self._connection.close()
                self._reused = False
                if stale:  # the collector closed an idle keep-alive connection: again, now
                    continue
                problem, retry_after = f"{type(error).__name__}: {error}", None
            else:
                if 200 <= status < 300:
                    if self._problem is not None:
                        log.info("OTLP export to %s works again", self.target)
                    self._problem = None
                    return SpanExportResult.SUCCESS
                if status not in RETRYABLE:
                    if status not in self._refused:
                        self._refused.add(status)
                        log.error(
                            "OTLP export to %s refused with HTTP %d: %d spans dropped, not "
                            "retried (logged once per status)",
                            self.target,
                            status,
                            count,
                        )
                    return SpanExportResult.FAILURE
                problem = f"HTTP {status}"
            delay = retry_delay(
                attempt, retry_after, now=time.time(), jitter=random.uniform(0.8, 1.2)
            )
            attempt += 1
            if time.monotonic() + delay >= deadline or self._stop.wait(delay):
                break
            log.debug(
                "OTLP export to %s: %s, retry %d in %.2f s", self.target, problem, attempt, delay
            )
        if self._problem != problem:
            self._problem = problem
            log.warning(
                "OTLP export to %s failed (%s): %d spans dropped after %d attempts",
                self.target,
                problem,
                count,
                attempt,
            )
        return SpanExportResult.FAILURE

    def _post(self, body: bytes, timeout: float) -> tuple[int, str | None]:
        """One POST on the kept-alive connection (connecting when it is closed)."""
        if timeout <= 0:
            raise TimeoutError("no time left")
        connection = self._connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.request("POST", self._path, body=body, headers=self._headers)
        response = connection.getresponse()
        response.read()  # all of it, or the connection cannot carry the next request
        self._reused = not response.will_close
        if response.will_close:
            connection.close()
        return response.status, response.getheader("retry-after")

    def shutdown(self) -> None:
        self._stop.set()  # also ends a retry's wait
        if self._lock.acquire(timeout=self.settings.timeout):
            try:
                self._connection.close()
            finally:
                self._lock.release()
