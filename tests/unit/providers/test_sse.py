"""The SSE parser gives the same events however the stream is cut into chunks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.providers.sse import SSEEvent, SSEParser

GOLDEN = Path(__file__).parents[2] / "golden" / "providers"


def _stream(name: str) -> bytes:
    if name == "stream-cr.sse":  # old-Mac line endings: the LF stream with every `\n` as `\r`
        return (GOLDEN / "stream.sse").read_bytes().replace(b"\n", b"\r")
    return (GOLDEN / name).read_bytes()


STREAMS = ["stream.sse", "stream-crlf.sse", "stream-tools.sse", "stream-cr.sse"]


def _parse(chunks: list[bytes]) -> tuple[list[SSEEvent], bytes]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser.flush()


def _whole(data: bytes) -> list[SSEEvent]:
    events, rest = _parse([data])
    assert rest == b""
    return events


@pytest.mark.parametrize("name", STREAMS)
def test_golden_stream_raw_events_concatenate_to_input(name: str) -> None:
    data = _stream(name)
    events, rest = _parse([data])
    assert b"".join(e.raw for e in events) + rest == data
    if name != "stream-cr.sse":  # a final `\r` might still be half of `\r\n`: kept until flush
        assert rest == b""
    assert events[-1 if rest == b"" else -2].data is not None


@pytest.mark.parametrize("name", STREAMS)
def test_golden_stream_split_at_every_offset_same_events(name: str) -> None:
    data = _stream(name)
    expected = _parse([data])
    for cut in range(len(data) + 1):
        assert _parse([data[:cut], data[cut:]]) == expected, cut


@pytest.mark.parametrize("name", STREAMS)
def test_golden_stream_fed_byte_by_byte_same_events(name: str) -> None:
    data = _stream(name)
    assert _parse([data[i : i + 1] for i in range(len(data))]) == _parse([data])


def test_openai_stream_events_carry_data_and_done() -> None:
    events = _whole(_stream("stream.sse"))
    assert len(events) == 12
    assert all(e.event is None and e.data is not None for e in events)
    assert events[-1].data == b"[DONE]"
    assert events[-2].data is not None and events[-2].data.startswith(b'{"id":')
    assert b'"choices":[]' in events[-2].data


def test_crlf_stream_keeps_terminators_and_comments_in_raw() -> None:
    events = _whole(_stream("stream-crlf.sse"))
    assert all(e.raw.endswith(b"\r\n\r\n") for e in events)
    comment = events[-2]
    assert comment == SSEEvent(b": keep-alive\r\n\r\n", None, None)
    assert events[-1].data == b"[DONE]"


def test_comment_only_events_have_no_data() -> None:
    events = _whole(_stream("stream-tools.sse"))
    assert [e.data for e in events[:2]] == [None, None]
    assert events[0].raw == b": OPENROUTER PROCESSING\n\n"


def test_fields_multiline_data_event_name_and_spaces() -> None:
    raw = b"event: delta\ndata:first\ndata:  second\nid: 7\nretry: 100\ndata\n: note\n\n"
    assert _whole(raw) == [SSEEvent(raw, b"first\n second\n", "delta")]


def test_stray_line_breaks_between_events_stay_in_raw() -> None:
    assert _whole(b"\ndata: x\n\n") == [SSEEvent(b"\ndata: x\n\n", b"x", None)]
    assert _whole(b"\n\ndata: x\n\n") == [
        SSEEvent(b"\n\n", None, None),
        SSEEvent(b"data: x\n\n", b"x", None),
    ]


def test_mixed_line_endings_in_one_event() -> None:
    raw = b"data: a\r\ndata: b\rdata: c\n\r\n"
    assert _whole(raw) == [SSEEvent(raw, b"a\nb\nc", None)]


def test_whole_lf_chunks_give_the_events_of_the_buffered_path() -> None:
    # A chunk with nothing buffered before it and no CR is cut without the buffer; byte by
    # byte, every feed after the first goes through the buffer: both must agree.
    data = (
        b"data:x\n\ndata: y\n\ndata:\n\ndata: \n\n: c\n\nevent: e\ndata: z\n\ndata:  w\n\ndata: par"
    )
    whole = _parse([data])
    assert whole == _parse([data[i : i + 1] for i in range(len(data))])
    assert [e.data for e in whole[0]] == [b"x", b"y", b"", b"", None, b"z", b" w"]
    assert whole[1] == b"data: par"


def test_cr_then_lf_across_chunks_is_one_line_break() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == []
    assert parser.feed(b"\ndata: b") == [SSEEvent(b"data: a\r\n\r\n", b"a", None)]
    assert parser.flush() == b"data: b"


def test_flush_returns_unfinished_event_and_resets() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"partial"') == []
    assert parser.flush() == b'data: {"partial"'
    assert parser.flush() == b""
    assert parser.feed(b"data: next\n\n") == [SSEEvent(b"data: next\n\n", b"next", None)]


# Random streams: each event uses one line-ending style; lines never contain CR or LF.
_VALUE = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=12)
_LINE = st.one_of(
    _VALUE.map(lambda v: ("data", v)),
    _VALUE.map(lambda v: ("event", v)),
    _VALUE.map(lambda v: ("", v)),  # a comment
)
_EVENT = st.tuples(st.lists(_LINE, min_size=1, max_size=4), st.sampled_from(["\n", "\r\n", "\r"]))


def _render(lines: list[tuple[str, str]], eol: str) -> bytes:
    text = "".join(f"{name}: {value}{eol}" if name else f":{value}{eol}" for name, value in lines)
    return (text + eol).encode()


def _expected(lines: list[tuple[str, str]]) -> tuple[bytes | None, str | None]:
    data = [v.encode() for n, v in lines if n == "data"]
    names = [v for n, v in lines if n == "event"]
    return (b"\n".join(data) if data else None), (names[-1] if names else None)


@given(st.lists(_EVENT, min_size=1, max_size=6), st.lists(st.integers(0, 400), max_size=8))
def test_random_streams_any_chunking_same_events(
    events: list[tuple[list[tuple[str, str]], str]], cuts: list[int]
) -> None:
    data = b"".join(_render(lines, eol) for lines, eol in events) + b"data: tail\n\n"
    bounds = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    parsed, rest = _parse(chunks)
    assert (parsed, rest) == _parse([data])
    assert rest == b""
    assert [(e.data, e.event) for e in parsed] == [
        *(_expected(lines) for lines, _ in events),
        (b"tail", None),
    ]
    assert b"".join(e.raw for e in parsed) == data
