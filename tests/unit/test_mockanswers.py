"""The mock provider's pure half: fault rules, the rule queue, deterministic answers and the
bytes of a streamed answer (the server itself is covered in tests/integration)."""

from __future__ import annotations

import orjson
import pytest

from switchboard.mockanswers import (
    DONE,
    MockState,
    answer_pieces,
    chat_stream,
    completion_tokens_of,
    embedding_inputs,
    embedding_tokens,
    parse_rules,
    prompt_tokens_of,
)


def test_rules_parse_with_defaults() -> None:
    [rule] = parse_rules({"rules": [{"fault": "429", "times": 2, "model": "gpt-*"}]})
    assert (rule.fault, rule.times, rule.model, rule.after_chunks) == ("429", 2, "gpt-*", 3)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"rules": [{"fault": "teapot"}]},
        {"rules": [{"fault": "500", "colour": "red"}]},
        {"rules": [{"fault": "500", "times": -1}]},
        {"rules": [{"fault": "500", "times": True}]},
        {"rules": [{"fault": "slow", "delay_ms": -5}]},
        {"rules": [{"fault": "cut_after", "after_chunks": 1.5}]},
    ],
)
def test_malformed_rules_are_refused(doc: object) -> None:
    with pytest.raises(ValueError):
        parse_rules(doc)


def test_first_matching_rule_applies_until_used_up() -> None:
    state = MockState("m", None, 0.0, 0.0)
    state.rules = parse_rules(
        {"rules": [{"fault": "500", "times": 1, "model": "gpt-4o"}, {"fault": "429"}]}
    )

    assert state.take_rule("gpt-4o").fault == "500"
    assert state.take_rule("gpt-4o").fault == "429"
    assert state.take_rule(None).fault == "429"
    state.rules.clear()
    assert state.take_rule("gpt-4o").fault == "ok"


def test_token_counts_follow_the_documented_rule() -> None:
    messages: list[object] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
    ]
    assert prompt_tokens_of(messages) == 3 + (4 + 4) + (2 + 4)
    assert completion_tokens_of({}) == 16
    assert completion_tokens_of({"max_tokens": 5}) == 5
    assert completion_tokens_of({"max_completion_tokens": 3, "max_tokens": 5}) == 3
    assert embedding_tokens(["abcde", [1, 2, 3]]) == 2 + 3


def test_special_answers_are_spread_over_exactly_the_completion_tokens() -> None:
    json_answer = answer_pieces([{"role": "user", "content": "[[json]]"}], 5)
    assert len(json_answer) == 5 and "".join(json_answer) == '{"ok": true}'
    assert answer_pieces([{"role": "user", "content": "[[empty]]"}], 2) == ["", ""]
    assert answer_pieces([{"role": "user", "content": "hi"}], 2) == ["tok ", "tok "]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a", ["a"]), (["a", "b"], ["a", "b"]), ([1, 2], [[1, 2]]), ([], None), ([1, "a"], None)],
)
def test_embedding_inputs_accept_the_openai_shapes(raw: object, expected: object) -> None:
    assert embedding_inputs(raw) == expected


def test_stream_events_end_with_usage_when_asked_then_done() -> None:
    stream = chat_stream("id-1", 0, "gpt-4o-mini", 7, ["tok ", "tok "], include_usage=True)

    assert stream.deltas[0] is stream.deltas[1]  # equal pieces share one encoded event
    events = stream.tail.split(b"\n\n")
    assert stream.tail.endswith(DONE)
    usage = orjson.loads(events[1].removeprefix(b"data: "))
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 7
    assert usage["usage"]["completion_tokens"] == 2
