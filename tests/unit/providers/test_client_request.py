"""What the sidecar refuses in a client's request body before routing it."""

from __future__ import annotations

import orjson
import pytest

from switchboard.providers.client_request import MAX_NESTING, nesting_exceeds, request_problem

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("scalar", 0, False),
        ([], 0, True),
        ([], 1, False),
        ([[]], 1, True),
        ({"a": [1, 2, {"b": None}]}, 3, False),
        ({"a": [1, 2, {"b": []}]}, 3, True),
        (_nested(MAX_NESTING), MAX_NESTING, False),
        (_nested(MAX_NESTING + 1), MAX_NESTING, True),
    ],
)
def test_nesting_exceeds_counts_array_and_object_levels(
    value: object, limit: int, expected: bool
) -> None:
    assert nesting_exceeds(value, limit) is expected


def test_body_nested_deeper_than_orjson_can_write_is_refused() -> None:
    # orjson reads 1024 levels but writes only 254: the sidecar could not forward this body.
    body = orjson.loads(
        b'{"model": "m", "messages": [{"role": "user"}], "tools": %s}' % (b"[" * 600 + b"]" * 600)
    )
    problem = request_problem("chat", body)
    assert problem is not None and "nests more than" in problem.message


@pytest.mark.parametrize("depth", [MAX_NESTING - 1, MAX_NESTING + 1])
def test_the_bodys_bytes_decide_like_the_walk_does(depth: int) -> None:
    # With the raw body, a walk is skipped only where the brackets are too few to nest deeper.
    raw = orjson.dumps({**CHAT, "tools": _nested(depth)})
    body = orjson.loads(raw)
    assert request_problem("chat", body, raw) == request_problem("chat", body)
    assert (request_problem("chat", body, raw) is None) is (depth < MAX_NESTING)


def test_brackets_inside_strings_make_a_body_walked_not_refused() -> None:
    raw = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "[{" * MAX_NESTING}]})
    assert request_problem("chat", orjson.loads(raw), raw) is None


def test_deep_embeddings_input_is_refused() -> None:
    problem = request_problem("embeddings", {"model": "e", "input": _nested(MAX_NESTING + 5)})
    assert problem is not None and "nests more than" in problem.message


def test_body_at_the_nesting_limit_is_accepted_and_can_be_written() -> None:
    body = {**CHAT, "tools": _nested(MAX_NESTING - 1)}
    assert request_problem("chat", body) is None
    orjson.dumps({"route": "r", "body": body})  # as the cache key wraps it


def test_stream_null_is_accepted_like_the_openai_api_does() -> None:
    assert request_problem("chat", {**CHAT, "stream": None}) is None


@pytest.mark.parametrize("stream", ["true", 1, [], {}])
def test_stream_of_the_wrong_type_is_refused(stream: object) -> None:
    problem = request_problem("chat", {**CHAT, "stream": stream})
    assert problem is not None and problem.param == "stream"
