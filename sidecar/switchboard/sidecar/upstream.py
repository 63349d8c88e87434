"""Edge: HTTP/1.1 to the providers — pooled keep-alive connections, one per request in flight.

The sidecar sends one kind of request (a JSON POST) and reads one kind of answer (JSON, or an
SSE stream), so it speaks HTTP/1.1 itself over asyncio connections and parses answers with
httptools (llhttp, the parser Node.js uses). A minimal aiohttp proxy used ~280 µs of CPU a
request here with aiohttp's general-purpose client and ~115 µs with a client like this one
(bench/README.md, third pass).

What it does: TLS with the system's CA store, `gzip`/`deflate` answers decoded, chunked and
length-delimited bodies and bodies that end with the connection, back-pressure on a body the
caller does not read (reading pauses above `HIGH_WATER` bytes), no cookies (the requests of
every user of the application share the connections), no redirects, no proxies from the
environment. A connection goes back to the pool only after a complete answer that allows
keep-alive; an idle connection the server closes leaves the pool at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from switchboard.config.runtime import ProviderRuntime
from switchboard.providers.openai_compat import UpstreamError

HIGH_WATER = 256 * 1024
"""Bytes of an unread body held before reading from the socket pauses."""
KEEPALIVE_SECONDS = 60.0
"""An idle pooled connection older than this is closed instead of reused."""
DRAIN_SECONDS = 5.0
"""How long a connection released before its answer ended may finish it and be reused."""


class UpstreamConnectError(OSError):
    """The provider could not be reached (DNS, refused, TLS handshake)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(os_error.errno, str(os_error))
        self.os_error = os_error


class UpstreamClosed(ConnectionError):
    """The provider closed the connection before its answer was complete."""


class UpstreamHTTPError(Exception):
    """The provider's bytes are not a valid HTTP/1.1 answer."""


# What a request to a provider may raise that means "this attempt failed" (error_of_exception).
UPSTREAM_FAILURES = (TimeoutError, UpstreamHTTPError, OSError)


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a provider URL points, parsed once."""

    origin: tuple[str, str, int]  # (scheme, host, port): the pool's key
    host_header: str
    path: str
    tls: bool


class UpstreamResponse:
    """An answer whose status and headers are in; the body is read with `read` or `readany`.

    `release` hands the connection back once the body is complete (or closes it if it never
    completes); `close` drops it. One of them must be called.
    """

    def __init__(self, connection: _Connection, status: int, headers: CIMultiDictProxy[str]):
        self._connection = connection
        self.status = status
        self.headers = headers
        self._decoder = _decoder_for(headers.get("Content-Encoding", ""))

    async def readany(self) -> bytes:
        """The next bytes of the body as they come; b"" at its end."""
        while True:
            data = await self._connection.next_body_part()
            if not data:
                return self._decoder.flush() if self._decoder else b""
            if self._decoder is None:
                return data
            decoded = self._decoder.decompress(data)
            if decoded:
                return decoded

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)

    def expire_at(self, when: float) -> None:
        """Move the answer's deadline (loop time); past it, reading raises TimeoutError."""
        self._connection.expire_at(when)

    def time_out_reads(self, seconds: float) -> None:
        """No deadline for the whole answer from now on; each wait for more of it gets
        `seconds` (a stream, once its first events are in)."""
        self._connection.expire_at(None)
        self._connection.read_timeout = seconds

    def release(self) -> None:
        self._connection.release()

    def close(self) -> None:
        self._connection.close()


class _Decoder:
    def __init__(self, encoding: str) -> None:
        self._raw_fallback = encoding == "deflate"
        self._z = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib, by header
        self._started = False

    def decompress(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data)
        except zlib.error as exc:
            if self._raw_fallback and not self._started:  # "deflate" sent without zlib header
                self._z = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
                self._raw_fallback = False
                return self.decompress(data)
            raise UpstreamHTTPError(f"undecodable compressed body: {exc}") from None
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._z.flush()


def _decoder_for(encoding: str) -> _Decoder | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Decoder(encoding)
    raise UpstreamHTTPError(f"unsupported Content-Encoding {encoding!r}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, pool: deque[_Connection] | None) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self.usable = True
        self.idle_since = 0.0
        self._headers: list[tuple[str, str]] = []
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._keep_alive = False  # read when the answer ends (the parser forgets it after)
        self._to_eof = False  # the answer has no length: it ends with the connection
        self._error: BaseException | None = None
        self._release_after: asyncio.TimerHandle | None = None
        # Deadlines are timers of the connection that fail the answer, rather than asyncio
        # timeouts around each await: one call_at per request instead of a Timeout context,
        # its task bookkeeping and three lookups of the running loop.
        self._expiry: asyncio.TimerHandle | None = None
        self.read_timeout: float | None = None

    # -- the request ----------------------------------------------------------------------

    def send(self, request: bytes, deadline: float) -> asyncio.Future[UpstreamResponse]:
        """Write `request`; the future has the answer's head, or fails at `deadline`."""
        assert self._transport is not None
        self._head = self._loop.create_future()
        self._headers.clear()
        self._body.clear()
        self._buffered = 0
        self._complete = self._keep_alive = self._to_eof = False
        self._error = None
        self.read_timeout = None
        self.expire_at(deadline)
        self._transport.write(request)
        return self._head

    def expire_at(self, when: float | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if when is not None:
            self._expiry = self._loop.call_at(when, self._expired)

    def _expired(self) -> None:
        self._expiry = None
        if not self._complete:
            self._fail(TimeoutError("upstream timed out"))
            self.close()

    async def next_body_part(self) -> bytes:
        while not self._body:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            if self.read_timeout is not None:
                self.expire_at(self._loop.time() + self.read_timeout)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if self.read_timeout is not None:  # only the wait is timed, not the caller
                    self.expire_at(None)
        data = self._body.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < HIGH_WATER // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    def release(self) -> None:
        """Back to the pool when the answer is complete; a little later if it is nearly."""
        if self._complete or not self.usable or self._error is not None or self._head is None:
            self._settle()
        else:
            self._release_after = self._loop.call_later(DRAIN_SECONDS, self.close)

    def _settle(self) -> None:
        """The answer is over and released: reuse the connection if it allows, else close."""
        if self._complete and self.usable and self._keep_alive:
            self._to_pool()
        else:
            self.close()

    def close(self) -> None:
        self.usable = False
        self.expire_at(None)
        if self._release_after is not None:
            self._release_after.cancel()
            self._release_after = None
        if self._transport is not None:
            self._transport.close()

    def _to_pool(self) -> None:
        self._head = None
        self.expire_at(None)
        if self._pool is None:
            self.close()
            return
        self.idle_since = time.monotonic()
        self._pool.append(self)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # bytes nobody asked for, on an idle connection
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamHTTPError(f"malformed HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._pool is not None and self in self._pool:
            self._pool.remove(self)
        if self._head is not None and self._to_eof and self._head.done():
            self._complete = True  # the answer's body was "until the connection closes"
            self._wake()
        self._fail(UpstreamClosed("upstream closed the connection"))

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): skip it
            self._headers.clear()
            return
        headers = CIMultiDictProxy(CIMultiDict(self._headers))
        self._to_eof = "Content-Length" not in headers and "Transfer-Encoding" not in headers
        head = self._head
        if head is None or head.done():
            return
        try:
            head.set_result(UpstreamResponse(self, status, headers))
        except UpstreamHTTPError as exc:
            head.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._head is None or not self._head.done():
            return  # the end of an interim answer
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()
        if self._release_after is not None:  # released early: the answer has now ended
            self._release_after.cancel()
            self._release_after = None
            self._settle()

    # -- helpers ------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._complete:
            return
        self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: the caller may have stopped waiting
        self._wake()


class Upstream:
    """Pooled connections to every provider; they outlive config reloads."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._targets: dict[tuple[str, str], _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        """The event loop's clock, which deadlines are given in."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    async def post(
        self, provider: ProviderRuntime, path: str, body: bytes, *, stream: bool, deadline: float
    ) -> UpstreamResponse:
        """Send a request; returns once the response headers are in. Connecting, sending and
        the answer's head must be done by `deadline` (loop time, see `now`), and so must its
        body unless the response's deadline is moved. Raises what `UPSTREAM_FAILURES` names."""
        target = self._target(provider.base_url, path)
        head = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {target.host_header}",
            "Content-Type: application/json",
            "User-Agent: switchboard",
            "Accept-Encoding: gzip, deflate",
            f"Content-Length: {len(body)}",
        ]
        if stream:
            head.append("Accept: text/event-stream")
        if provider.api_key is not None:
            key = provider.api_key.value
            if "\r" in key or "\n" in key:  # it would end the header and start another
                raise UpstreamHTTPError(
                    f"the API key of provider {provider.name!r} has a line break"
                )
            head.append(f"Authorization: Bearer {key}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        connect_by = min(self.now() + provider.connect_timeout, deadline)
        connection = await self._connection(target, connect_by)
        try:
            return await connection.send(request, deadline)
        except BaseException:
            connection.close()
            raise

    def _target(self, base_url: str, path: str) -> _Target:
        target = self._targets.get((base_url, path))
        if target is None:  # parsed once: URL parsing showed in the profile of a busy sidecar
            url = URL(base_url + path)
            if url.scheme not in ("http", "https") or not url.host:
                raise UpstreamHTTPError(f"provider URL {base_url!r} is not http(s)://host...")
            port = url.port or (443 if url.scheme == "https" else 80)
            host = f"[{url.host}]" if ":" in url.host else url.host
            default = port == (443 if url.scheme == "https" else 80)
            target = _Target(
                (url.scheme, url.host, port),
                host if default else f"{host}:{port}",
                url.raw_path_qs,
                url.scheme == "https",
            )
            self._targets[(base_url, path)] = target
        return target

    async def _connection(self, target: _Target, connect_by: float) -> _Connection:
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = deque()
        oldest = time.monotonic() - KEEPALIVE_SECONDS
        while pool:
            connection = pool.pop()
            if connection.usable and connection.idle_since > oldest:
                return connection
            connection.close()
        _, host, port = target.origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(connect_by):
                _, connection = await loop.create_connection(
                    lambda: _Connection(None if self._closed else pool),
                    host,
                    port,
                    ssl=self._tls_context() if target.tls else None,
                    server_hostname=host if target.tls else None,
                )
        except OSError as exc:
            raise UpstreamConnectError(exc) from exc
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            while pool:
                pool.pop().close()
        self._pools.clear()


def error_of_exception(exc: BaseException) -> UpstreamError:
    """What a transport failure means for failover; never carries request content or keys."""
    if isinstance(exc, TimeoutError):
        return UpstreamError("timeout", None, True, None, "upstream timed out")
    if isinstance(exc, UpstreamConnectError):
        return UpstreamError("connect", None, True, None, f"cannot connect: {exc.os_error}")
    if isinstance(exc, UpstreamClosed):
        return UpstreamError("connect", None, True, None, "upstream closed the connection")
    if isinstance(exc, UpstreamHTTPError):
        return UpstreamError("connect", None, True, None, f"bad upstream answer: {exc}")
    if isinstance(exc, OSError):
        return UpstreamError(
            "connect", None, True, None, f"connection failed: {type(exc).__name__}"
        )
    raise exc
