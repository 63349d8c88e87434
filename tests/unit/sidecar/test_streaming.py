"""The stream relay forwards events byte for byte, keeps the usage-only chunk aside, stops at
`[DONE]`, and bills an estimate when the provider never reported usage."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from switchboard.pricing.cost import Usage
from switchboard.providers.sse import SSEEvent, SSEParser
from switchboard.sidecar.streaming import (
    DONE_EVENT,
    StreamTally,
    cost_comment,
    error_event,
    relay,
    stream_tail,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "providers"
# tests/golden/providers/stream.sse: 9 content deltas (one empty: the role chunk), a finish
# chunk, the usage-only chunk and [DONE].
GOLDEN_USAGE = Usage(input_tokens=2118, output_tokens=9, cached_input_tokens=1920)
GOLDEN_TEXT = "The parcel left our warehouse on Tuesday."


def _chunk(content: str | None = None, *, model: str = "m-1", finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    doc = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _usage_chunk(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    doc = {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _events(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = parser.feed(data)
    assert parser.flush() == b""
    return events


def _relay_in_pieces(data: bytes, cut: int, tally: StreamTally) -> bytes:
    """Relay `data` as it would arrive in two network reads, split at `cut`."""
    parser = SSEParser()
    return relay(parser.feed(data[:cut]), tally) + relay(parser.feed(data[cut:]), tally)


def test_golden_stream_forwards_everything_but_usage_chunk_and_done() -> None:
    data = (GOLDEN / "stream.sse").read_bytes()
    events = _events(data)
    usage_event, done_event = events[-2], events[-1]
    tally = StreamTally(keep_text=True)

    out = relay(events, tally)

    assert out == b"".join(e.raw for e in events[:-2])
    assert tally.usage_event == usage_event.raw
    assert done_event.raw == DONE_EVENT
    assert tally.done
    assert tally.usage == GOLDEN_USAGE
    assert tally.text == GOLDEN_TEXT
    assert tally.output_chunks == 8
    assert tally.response_model == "gpt-4o-mini-2024-07-18"


def test_golden_stream_split_at_every_offset_relays_the_same_bytes() -> None:
    data = (GOLDEN / "stream.sse").read_bytes()
    whole = relay(_events(data), StreamTally(keep_text=False))
    for cut in range(len(data) + 1):
        tally = StreamTally(keep_text=False)
        assert _relay_in_pieces(data, cut, tally) == whole, cut
        assert tally.done and tally.usage == GOLDEN_USAGE


def test_usage_only_chunk_is_withheld_and_kept_aside() -> None:
    usage = _usage_chunk(10, 2)
    tally = StreamTally(keep_text=False)

    out = relay(_events(_chunk("a") + _chunk("b") + usage), tally)

    assert out == _chunk("a") + _chunk("b")
    assert tally.usage_event == usage
    assert tally.usage == Usage(input_tokens=10, output_tokens=2)
    assert not tally.done


def test_usage_on_a_content_chunk_is_counted_and_the_chunk_forwarded() -> None:
    doc = {
        "id": "c1",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    event = b"data: " + json.dumps(doc).encode() + b"\n\n"
    tally = StreamTally(keep_text=False)

    assert relay(_events(event), tally) == event
    assert tally.usage == Usage(input_tokens=5, output_tokens=1)
    assert tally.usage_event is None


def test_done_is_not_forwarded_and_ends_the_relay() -> None:
    tally = StreamTally(keep_text=True)
    late = _chunk("late")

    first = relay(_events(_chunk("a") + DONE_EVENT + late), tally)
    second = relay(_events(_chunk("after")), tally)

    assert first == _chunk("a")
    assert second == b""
    assert tally.done
    assert tally.text == "a"
    assert tally.output_chunks == 1


def test_done_with_extra_whitespace_is_recognised() -> None:
    tally = StreamTally(keep_text=False)
    assert relay(_events(b"data:  [DONE] \n\n"), tally) == b""
    assert tally.done


def test_comments_and_dataless_events_pass_through_untouched() -> None:
    comment = b": keep-alive\n\n"
    named = b"event: ping\n\n"
    tally = StreamTally(keep_text=False)

    out = relay(_events(comment + _chunk("a") + named), tally)

    assert out == comment + _chunk("a") + named
    assert tally.events == 1


def test_text_is_kept_only_when_asked() -> None:
    data = _chunk("Hello") + _chunk(", world")
    kept, dropped = StreamTally(keep_text=True), StreamTally(keep_text=False)

    relay(_events(data), kept)
    relay(_events(data), dropped)

    assert kept.text == "Hello, world"
    assert dropped.text == ""
    assert kept.output_chunks == dropped.output_chunks == 2


def test_empty_deltas_are_not_counted_as_output() -> None:
    tally = StreamTally(keep_text=False)
    relay(_events(_chunk("") + _chunk(None, finish="stop") + _chunk("x")), tally)
    assert tally.output_chunks == 1


def test_response_model_is_the_first_one_reported() -> None:
    tally = StreamTally(keep_text=False)
    relay(_events(_chunk("a", model="first") + _chunk("b", model="second")), tally)
    assert tally.response_model == "first"


def test_billed_usage_is_the_reported_usage_when_it_arrived() -> None:
    tally = StreamTally(keep_text=False)
    relay(_events(_chunk("a") + _usage_chunk(40, 7) + DONE_EVENT), tally)
    assert tally.billed_usage(prompt_estimate=999) == (Usage(40, 7), False)


def test_billed_usage_without_usage_is_an_estimate() -> None:
    tally = StreamTally(keep_text=False)
    relay(_events(_chunk("") + _chunk("a") + _chunk("b") + _chunk("c") + DONE_EVENT), tally)
    assert tally.billed_usage(prompt_estimate=12) == (Usage(12, 3), True)


def test_billed_usage_of_a_stream_cut_before_any_content_is_the_prompt_only() -> None:
    assert StreamTally(keep_text=False).billed_usage(prompt_estimate=30) == (Usage(30, 0), True)


def test_invalid_json_event_stops_the_relay_after_the_events_before_it() -> None:
    tally = StreamTally(keep_text=True)
    good = _chunk("a") + _chunk("b")
    out = relay(_events(good + b'data: {"choices": [\n\n' + _chunk("c")), tally)
    assert out == good
    assert tally.invalid
    assert tally.text == "ab"
    assert tally.output_chunks == 2
    assert relay(_events(_chunk("d")), tally) == b""


def test_event_without_choices_stops_the_relay() -> None:
    tally = StreamTally(keep_text=False)
    assert relay(_events(b'data: {"error": {"message": "boom"}}\n\n'), tally) == b""
    assert tally.invalid


def test_cost_comment_is_an_sse_comment_with_a_plain_decimal() -> None:
    comment = cost_comment(Decimal("0.000012500"))
    assert comment == b": x-switchboard-cost-usd=0.0000125\n\n"
    assert [e.data for e in _events(comment)] == [None]
    assert cost_comment(Decimal("0")) == b": x-switchboard-cost-usd=0\n\n"


def test_error_event_is_one_openai_style_error_data_event() -> None:
    events = _events(error_event('upstream stream broke: "cut"\nafter 3 chunks'))
    assert len(events) == 1
    assert events[0].data is not None
    error = json.loads(events[0].data)["error"]
    assert error["message"] == 'upstream stream broke: "cut"\nafter 3 chunks'
    assert error["type"] == "upstream_stream_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_stream_tail_sends_the_usage_chunk_only_to_clients_that_asked() -> None:
    usage = _usage_chunk(10, 2)
    asked = {"stream_options": {"include_usage": True}}
    cost = cost_comment(Decimal("0.5"))

    assert stream_tail(usage, asked, Decimal("0.5")) == usage + cost + DONE_EVENT
    assert stream_tail(usage, {}, Decimal("0.5")) == cost + DONE_EVENT
    assert stream_tail(None, asked, Decimal("0.5")) == cost + DONE_EVENT
