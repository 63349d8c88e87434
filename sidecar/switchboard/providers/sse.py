"""Pure: an incremental Server-Sent-Events parser for pass-through proxying (bytes in, events out).

Each event keeps its exact bytes (`raw`, terminating blank line included), so the proxy can
forward it untouched and look at `data` only to count usage. Lines may end in `\\n`, `\\r\\n`
or `\\r` (WHATWG HTML, "Server-sent events"). An event ends at its first blank line, so stray
line breaks between events stay in some event's `raw` (one without data, if need be).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# A line ending followed by another one: the blank line that ends an event. A lone `\r` may not
# be the first half of `\r\n`, or "a\r\nb" would look like a blank line.
_END_OF_EVENT = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


class SSEEvent(NamedTuple):
    """One event: its exact bytes, the joined `data:` values (None if none) and `event:` name.
    (A NamedTuple, not a frozen dataclass: one is built per event, at a third of the cost.)"""

    raw: bytes
    data: bytes | None
    event: str | None


class SSEParser:
    """Feed chunks as they arrive; get back the events they complete, in order."""

    __slots__ = ("_buf", "_scan")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # no event boundary starts before this offset of `_buf`

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._buf and b"\r" not in chunk:
            return self._feed_lf(chunk)
        buf = self._buf
        buf += chunk
        events: list[SSEEvent] = []
        start = 0
        cr = -2  # where the next `\r` at or after the scan position is; -2: not looked yet
        while True:
            pos = max(start, self._scan)
            if cr != -1 and cr < pos:  # look once per `\r`, not once per event
                cr = buf.find(b"\r", pos)
            end = _event_end(buf, pos, cr >= 0)
            if end < 0:
                break
            raw = bytes(buf[start:end])
            events.append(_event(raw, 0, len(raw)))
            start = end
        if start:
            del buf[:start]
        # The longest boundary that is still undecided (`\r\n\r`) is 3 bytes long.
        self._scan = max(0, len(buf) - 3)
        return events

    def _feed_lf(self, chunk: bytes) -> list[SSEEvent]:
        """`feed` of the usual case, nothing buffered and `\n` line endings only: the events are
        cut straight from `chunk`, without copying it into the buffer and out again."""
        events: list[SSEEvent] = []
        start = 0
        find = chunk.find
        while (found := find(b"\n\n", start)) >= 0:
            events.append(_event(chunk, start, found + 2))
            start = found + 2
        if start < len(chunk):
            self._buf += memoryview(chunk)[start:]
        self._scan = max(0, len(self._buf) - 3)
        return events

    def flush(self) -> bytes:
        """The bytes of an unfinished event (the stream ended mid-event); the parser is reset."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return rest


def _event_end(buf: bytearray, pos: int, has_cr: bool) -> int:
    """Offset just past the first complete event boundary at or after `pos`, or -1;
    `has_cr`: whether `buf` holds a `\r` at or after `pos`."""
    if not has_cr:  # the common case: `\n` line endings only
        found = buf.find(b"\n\n", pos)
        return found + 2 if found >= 0 else -1
    match = _END_OF_EVENT.search(buf, pos)
    if match is None:
        return -1
    end = match.end()
    if end == len(buf) and buf[end - 1] == 0x0D:  # a `\n` may follow: wait for the next byte
        return -1
    return end


def _event(source: bytes, start: int, end: int) -> SSEEvent:
    """The event `source[start:end]` (its terminating blank line included)."""
    # The shape almost every provider sends, one `data:` line ended by `\n\n`, needs no split:
    # its value is cut straight from `source`.
    stop = end - 2
    if (
        source.startswith(b"data:", start)
        and source[stop:end] == b"\n\n"
        and source.find(b"\n", start, stop) < 0
        and source.find(b"\r", start, end) < 0
    ):
        skip = 6 if source[start + 5 : start + 6] == b" " else 5
        return SSEEvent(source[start:end], source[start + skip : stop], None)
    raw = source[start:end]
    lines = _LINE_BREAK.split(raw) if b"\r" in raw else raw.split(b"\n")
    data: list[bytes] = []
    event: str | None = None
    for line in lines:
        if not line or line[0] == 0x3A:  # blank, or a `:` comment
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SSEEvent(raw, b"\n".join(data) if data else None, event)
