"""Cache keys: the same question gets the same key, any real change a different one."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.cache.keys import cache_key, cacheable

ROUTE, CHAT = "classification", "chat.completions"


def _body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Classify the ticket."},
            {"role": "user", "content": "Where is my parcel?"},
        ],
        "temperature": 0,
        "tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": {}}}],
    }
    body.update(changes)
    return body


def test_key_is_sha256_hex() -> None:
    key = cache_key(ROUTE, CHAT, _body())
    assert len(key) == 64
    assert int(key, 16) >= 0


def test_key_ignores_key_order_at_every_level() -> None:
    body = _body()
    reordered = {k: body[k] for k in reversed(list(body))}
    reordered["messages"] = [
        {"content": "Classify the ticket.", "role": "system"},
        {"content": "Where is my parcel?", "role": "user"},
    ]
    assert list(reordered) != list(body)
    assert cache_key(ROUTE, CHAT, reordered) == cache_key(ROUTE, CHAT, body)


@pytest.mark.parametrize(
    "noise",
    [
        {"stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "u-42"},
        {"metadata": {"ticket": "T-1"}},
        {"n": 1},
        {"cache": {"ttl": 60}},
        {"seed": None},
        {"temperature": 0.0},
    ],
)
def test_key_ignores_what_does_not_change_the_answer(noise: dict[str, object]) -> None:
    assert cache_key(ROUTE, CHAT, _body(**noise)) == cache_key(ROUTE, CHAT, _body())


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "Where is my parcel!"}]},
        {"temperature": 0.2},
        {"tools": []},
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"max_tokens": 10},
    ],
)
def test_key_changes_with_the_question(change: dict[str, object]) -> None:
    assert cache_key(ROUTE, CHAT, _body(**change)) != cache_key(ROUTE, CHAT, _body())


def test_key_depends_on_route_and_endpoint() -> None:
    base = cache_key(ROUTE, CHAT, _body())
    assert cache_key("default", CHAT, _body()) != base
    assert cache_key(ROUTE, "embeddings", _body()) != base


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
_BODY = st.dictionaries(st.sampled_from(["model", "messages", "tools", "seed", "top_p"]), _JSON)


@given(_BODY, st.randoms())
def test_key_stable_under_shuffling_and_transport_fields(
    body: dict[str, object], rng: random.Random
) -> None:
    items = list(body.items())
    rng.shuffle(items)
    noisy = dict(items) | {"stream": True, "user": "someone", "n": 1}
    assert cache_key(ROUTE, CHAT, noisy) == cache_key(ROUTE, CHAT, body)


@given(_BODY, st.text(min_size=1, max_size=20))
def test_key_changes_when_a_message_changes(body: dict[str, object], text: str) -> None:
    one = body | {"messages": [{"role": "user", "content": text}]}
    other = body | {"messages": [{"role": "user", "content": text + "?"}]}
    assert cache_key(ROUTE, CHAT, one) != cache_key(ROUTE, CHAT, other)


@pytest.mark.parametrize(
    ("opt", "expected"),
    [
        (None, True),
        ({"ttl": 60}, True),
        ({"no-cache": False}, True),
        (True, True),
        (False, False),
        ({"no-cache": True}, False),
        ({"no-store": True}, False),
    ],
)
def test_cacheable_body_opt_outs(opt: object, expected: bool) -> None:
    body = _body() if opt is None else _body(cache=opt)
    assert cacheable(body) is expected


def test_cacheable_regardless_of_temperature_and_n() -> None:
    assert cacheable(_body(temperature=1.3, n=3))
