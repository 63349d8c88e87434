"""The sidecar's HTTP/1.1 client (`sidecar/upstream.py`) against scripted servers on loopback:
each server reads a request and answers with exact bytes, so that the framings, encodings and
connection behaviours a provider may use are each met on a real socket."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from switchboard.config.runtime import ProviderRuntime, SecretValue
from switchboard.sidecar.upstream import (
    HIGH_WATER,
    Upstream,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamHTTPError,
    error_of_exception,
)

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]
"""Writes the answer to one request (its raw head and body)."""


@dataclass
class Scripted:
    """A server on loopback: `answer` writes each answer; connections and requests are kept."""

    answer: Answer
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.answer(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Scripted]]]:
    servers: list[Scripted] = []

    async def start(answer: Answer) -> Scripted:
        scripted = Scripted(answer)
        scripted.server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(scripted)
        return scripted

    yield start
    for scripted in servers:
        assert scripted.server is not None
        scripted.server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    client = Upstream()
    yield client
    await client.close()


def provider(url: str, key: str | None = "sk-test", timeout: float = 5.0) -> ProviderRuntime:
    return ProviderRuntime(
        name="scripted",
        base_url=url,
        api="openai",
        region=None,
        key_env=None,
        api_key=SecretValue(key) if key is not None else None,
        timeout=timeout,
        connect_timeout=2.0,
        first_byte_timeout=timeout,
    )


def fixed(raw: bytes) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return answer


def json_answer(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


BODY = b'{"id":"chatcmpl-1","choices":[]}'


def soon(upstream: Upstream, seconds: float = 5.0) -> float:
    return upstream.now() + seconds


async def post(upstream: Upstream, url: str, *, stream: bool = False, **kw: object) -> bytes:
    target = provider(url, **kw)  # type: ignore[arg-type]
    response = await upstream.post(
        target, "/chat/completions", b"{}", stream=stream, deadline=soon(upstream)
    )
    try:
        return await response.read()
    finally:
        response.release()


async def test_the_request_is_one_json_post_with_the_key_and_no_cookies(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    server = await serve(fixed(json_answer(BODY, "Set-Cookie: affinity=1")))
    await post(upstream, server.url)
    await post(upstream, server.url, stream=True)
    plain, streamed = server.requests
    assert plain.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in plain
    assert b"\r\nAuthorization: Bearer sk-test\r\n" in plain
    assert b"\r\nContent-Type: application/json\r\n" in plain
    assert plain.endswith(b"\r\n\r\n{}")
    assert b"Accept: text/event-stream" in streamed and b"Accept: text/event" not in plain
    assert b"cookie" not in streamed.lower()


async def test_one_connection_serves_request_after_request(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    server = await serve(fixed(json_answer(BODY)))
    for _ in range(5):
        assert await post(upstream, server.url) == BODY
    assert server.connections == 1


async def test_connection_close_and_http_1_0_answers_are_not_reused(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    closing = await serve(fixed(json_answer(BODY, "Connection: close")))
    old = await serve(fixed(json_answer(BODY).replace(b"HTTP/1.1", b"HTTP/1.0", 1)))
    for server in (closing, old):
        for _ in range(3):
            assert await post(upstream, server.url) == BODY
        assert server.connections == 3


async def test_chunked_gzip_deflate_and_until_close_bodies_arrive_whole(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    half = len(BODY) // 2
    chunked = json_answer(
        f"{half:x}\r\n".encode()
        + BODY[:half]
        + f"\r\n{len(BODY) - half:x}\r\n".encode()
        + BODY[half:]
        + b"\r\n0\r\n\r\n",
        "Transfer-Encoding: chunked",
    )
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    answers = [
        chunked,
        json_answer(gzip.compress(BODY), "Content-Encoding: gzip"),
        json_answer(zlib.compress(BODY), "Content-Encoding: deflate"),
        json_answer(raw_deflate.compress(BODY) + raw_deflate.flush(), "Content-Encoding: deflate"),
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + json_answer(BODY),
    ]
    for raw in answers:
        server = await serve(fixed(raw))
        assert await post(upstream, server.url) == BODY, raw[:60]

    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY)
        await writer.drain()
        writer.close()

    server = await serve(until_close)
    assert await post(upstream, server.url) == BODY


async def test_a_stream_arrives_part_by_part_as_it_is_sent(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    go = asyncio.Event()

    async def events(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"9\r\ndata: 1\n\n\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")
        await writer.drain()

    server = await serve(events)
    response = await upstream.post(
        provider(server.url), "/chat/completions", b"{}", stream=True, deadline=soon(upstream)
    )
    assert response.status == 200
    assert await response.readany() == b"data: 1\n\n"
    go.set()
    assert await response.readany() == b"data: 2\n\n"
    assert await response.readany() == b""
    response.release()
    assert await post(upstream, server.url) == b"data: 1\n\n" + b"data: 2\n\n"
    assert server.connections == 1


async def test_a_connection_released_before_its_answer_ended_is_reused_once_it_ends(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    go = asyncio.Event()

    async def late_end(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndone\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        go.clear()

    server = await serve(late_end)
    response = await upstream.post(
        provider(server.url), "/chat/completions", b"{}", stream=True, deadline=soon(upstream)
    )
    assert await response.readany() == b"done"
    response.release()  # as the relay does after [DONE], before the last chunk
    go.set()
    await asyncio.sleep(0.05)
    go.set()
    assert await post(upstream, server.url) == b"done"
    assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_not_reused(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    async def then_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(json_answer(BODY))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server's keep-alive timeout, without Connection: close

    server = await serve(then_close)
    assert await post(upstream, server.url) == BODY
    await asyncio.sleep(0.2)
    assert await post(upstream, server.url) == BODY
    assert server.connections == 2


async def test_errors_are_classified_without_content_or_keys(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    cut = await serve(fixed(json_answer(BODY)[:-5]))  # then the connection closes
    cut.answer = _then_close(cut.answer)
    with pytest.raises(UpstreamClosed) as closed:
        await post(upstream, cut.url)
    assert error_of_exception(closed.value).message == "upstream closed the connection"

    garbage = await serve(fixed(b"SPDY/9 what\r\n\r\n"))
    with pytest.raises(UpstreamHTTPError) as bad:
        await post(upstream, garbage.url)
    assert error_of_exception(bad.value).message.startswith("bad upstream answer: malformed")

    brotli = await serve(fixed(json_answer(b"xx", "Content-Encoding: br")))
    with pytest.raises(UpstreamHTTPError, match="unsupported Content-Encoding 'br'"):
        await post(upstream, brotli.url)

    with pytest.raises(UpstreamConnectError) as refused:
        await post(upstream, "http://127.0.0.1:9/v1")
    assert error_of_exception(refused.value).message.startswith("cannot connect: ")

    with pytest.raises(UpstreamHTTPError, match="has a line break"):
        await post(upstream, cut.url, key="sk-1\r\nX-Injected: 1")
    assert all(b"X-Injected" not in r for r in cut.requests)


def _then_close(answer: Answer) -> Answer:
    async def wrapped(request: bytes, writer: asyncio.StreamWriter) -> None:
        await answer(request, writer)
        writer.close()

    return wrapped


async def test_a_stalled_stream_times_out_between_reads(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    async def stall(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsome\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(b"4\r\nmore\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    server = await serve(stall)
    response = await upstream.post(
        provider(server.url), "/chat/completions", b"{}", stream=True, deadline=soon(upstream)
    )
    assert await response.readany() == b"some"
    response.time_out_reads(0.5)
    assert await response.readany() == b"more"  # 0.3 s apart: within the read timeout
    began = upstream.now()
    with pytest.raises(TimeoutError):
        await response.readany()
    assert 0.4 < upstream.now() - began < 2
    response.close()


async def test_a_slow_reader_is_not_timed_out_while_the_stream_keeps_coming(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    async def paced(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part, pause in ((b"a", 0.05), (b"b", 0.05), (b"", 0.4)):
            await asyncio.sleep(pause)
            writer.write(
                f"{len(part):x}\r\n".encode() + part + b"\r\n" + (b"" if part else b"\r\n")
            )
            await writer.drain()

    server = await serve(paced)
    response = await upstream.post(
        provider(server.url), "/chat/completions", b"{}", stream=True, deadline=soon(upstream)
    )
    response.time_out_reads(0.25)
    assert await response.readany() == b"a"
    await asyncio.sleep(0.4)  # the caller is busy (a slow client) past the read timeout
    assert await response.readany() == b"b"
    assert await response.readany() == b""  # the end came 0.5 s in: within 0.25 s of the wait
    response.release()


async def test_the_deadline_bounds_the_head_and_then_the_whole_body(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    async def silent(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def trickle(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(50):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)  # every read is quick; the whole body is not

    quiet, slow = await serve(silent), await serve(trickle)
    began = upstream.now()
    with pytest.raises(TimeoutError):
        await upstream.post(
            provider(quiet.url), "/x", b"{}", stream=False, deadline=soon(upstream, 0.3)
        )
    assert 0.25 < upstream.now() - began < 2
    response = await upstream.post(
        provider(slow.url), "/x", b"{}", stream=False, deadline=soon(upstream, 5)
    )
    response.expire_at(soon(upstream, 0.4))
    with pytest.raises(TimeoutError):
        await response.read()
    response.close()


async def test_an_unread_body_pauses_reading_and_resumes_when_read(
    serve: Callable[[Answer], Awaitable[Scripted]], upstream: Upstream
) -> None:
    big = b"x" * (HIGH_WATER * 8)
    server = await serve(fixed(json_answer(big)))
    response = await upstream.post(
        provider(server.url), "/chat/completions", b"{}", stream=False, deadline=soon(upstream)
    )
    await asyncio.sleep(0.2)  # the server has written all it could; the client stopped reading
    buffered = response._connection._buffered
    assert HIGH_WATER < buffered < len(big)
    assert await response.read() == big
    response.release()
    assert await post(upstream, server.url) == big and server.connections == 1
