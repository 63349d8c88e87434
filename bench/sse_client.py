"""Edge: a minimal HTTP/1.1 keep-alive client that times a streamed chat completion.

Blocking sockets, one request at a time (concurrency 1), run on the load core: every `recv`
is timestamped before anything is parsed, so the client's own parsing never delays a
timestamp, and the events are parsed only once all streams are done (`Received.timing`), so
that the next request leaves as soon as a stream ends, as vegeta's do. Parsing a 100-event
stream between requests took ~0.5 ms, during which an idle proxy core went to sleep, and the
next request then found it asleep (this affects proxies only: the direct target's mock shares
the client's core). What it reports per stream: time to the first content token, to the end
(`[DONE]`), and when each content event arrived (for the gaps between chunks).
"""

from __future__ import annotations

import bisect
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


class StreamError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StreamTiming:
    ttft: float
    """Seconds from sending the request to the first event carrying content."""
    total: float
    """Seconds from sending the request to `data: [DONE]`."""
    arrivals: list[float]
    """Arrival time (seconds after sending) of every event carrying content."""


@dataclass(frozen=True, slots=True)
class Received:
    """The `recv`s of one stream, each with its time (seconds after sending the request)."""

    chunks: list[tuple[float, bytes]]
    header_size: int

    def timing(self) -> StreamTiming:
        return _timing(self.chunks, self.header_size)


class StreamClient:
    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path
        self.headers = headers
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stream(self, body: bytes) -> Received:
        head = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        sock = self._connect()
        chunks: list[tuple[float, bytes]] = []
        sent = time.perf_counter()
        sock.sendall(request)
        reader = _Response()
        while not reader.complete:
            data = sock.recv(262144)
            now = time.perf_counter()
            if not data:
                self.close()
                raise StreamError("connection closed mid-response")
            chunks.append((now - sent, data))
            reader.feed(data)
        if reader.status != 200:
            raise StreamError(f"status {reader.status}: {reader.body()[:300]!r}")
        if reader.close_after:
            self.close()
        return Received(chunks, reader.header_size)


class _Response:
    """Incremental reader of one HTTP/1.1 response (Content-Length or chunked)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.status = 0
        self.header_size = -1
        self.length: int | None = None
        self.chunked = False
        self.close_after = False
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.header_size < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.header_size = end + 4
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    self.chunked = True
                elif name == "connection" and value == "close":
                    self.close_after = True
        raw = self.buffer[self.header_size :]
        if self.chunked:
            self.complete = raw.endswith(b"0\r\n\r\n") and _dechunk(raw) is not None
        elif self.length is not None:
            self.complete = len(raw) >= self.length

    def body(self) -> bytes:
        raw = self.buffer[self.header_size :]
        return (_dechunk(raw) or b"") if self.chunked else raw


def _dechunk(raw: bytes) -> bytes | None:
    """The payload of a complete chunked body, or None when it is not complete."""
    out: list[bytes] = []
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        start = end + 2
        if len(raw) < start + size + 2:
            return None
        out.append(raw[start : start + size])
        pos = start + size + 2


def _timing(chunks: list[tuple[float, bytes]], header_size: int) -> StreamTiming:
    """Attribute every SSE event to the `recv` that brought its last byte."""
    raw = b"".join(data for _, data in chunks)
    recv_ends: list[int] = []  # raw offset just past each recv's bytes
    offset = 0
    for _, data in chunks:
        offset += len(data)
        recv_ends.append(offset)
    ranges = _payload_map(raw, header_size)
    payload = b"".join(raw[a:b] for a, b in ranges)
    starts: list[int] = []  # payload offset at which each range begins
    total = 0
    for a, b in ranges:
        starts.append(total)
        total += b - a

    def arrival(payload_offset: int) -> float:
        r = bisect.bisect_right(starts, payload_offset) - 1
        raw_offset = ranges[r][0] + payload_offset - starts[r]
        return chunks[bisect.bisect_right(recv_ends, raw_offset)][0]

    arrivals: list[float] = []
    done_at: float | None = None
    pos = 0
    while (cut := payload.find(b"\n\n", pos)) >= 0:
        event, at = payload[pos:cut], arrival(cut + 1)
        pos = cut + 2
        if not event.startswith(b"data: "):
            continue
        data = event[6:].strip()
        if data == b"[DONE]":
            done_at = at
        elif _has_content(data):
            arrivals.append(at)
    if done_at is None or not arrivals:
        raise StreamError("stream ended without content or [DONE]")
    return StreamTiming(arrivals[0], done_at, arrivals)


def _payload_map(raw: bytes, header_size: int) -> list[tuple[int, int]]:
    """Ranges of `raw` holding body payload (the chunk framing left out, when chunked)."""
    head = raw[:header_size].lower()
    if b"transfer-encoding: chunked" not in head:
        return [(header_size, len(raw))]
    ranges: list[tuple[int, int]] = []
    pos = header_size
    while True:
        end = raw.find(b"\r\n", pos)
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return ranges
        ranges.append((end + 2, end + 2 + size))
        pos = end + 2 + size + 2


def _has_content(data: bytes) -> bool:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return any((c.get("delta") or {}).get("content") for c in doc.get("choices") or ())
