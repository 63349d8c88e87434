"""The OpenAI-compatible schema: request reading, upstream bodies, responses, streams, errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.pricing.cost import Usage
from switchboard.providers.openai_compat import (
    ChatResult,
    StreamChunk,
    UpstreamError,
    UpstreamProtocolError,
    build_chat_body,
    build_embeddings_body,
    classify_error,
    error_body,
    estimate_prompt_tokens,
    parse_chat_response,
    parse_embeddings_response,
    parse_stream_event,
    requested_max_output_tokens,
    scrub,
    usage_of,
    wants_json,
)
from switchboard.providers.sse import SSEParser

GOLDEN = Path(__file__).parents[2] / "golden" / "providers"


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


# Requests ------------------------------------------------------------------------------------


def test_estimate_prompt_tokens_string_contents() -> None:
    body = {
        "messages": [{"role": "system", "content": "abcd" * 10}, {"role": "user", "content": "x"}]
    }
    assert estimate_prompt_tokens(body) == 11 + 4 * 2 + 3  # ceil(41 / 4) == 11


def test_estimate_prompt_tokens_counts_text_parts_only() -> None:
    parts = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"},
    ]
    body = {
        "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": None}]
    }
    assert estimate_prompt_tokens(body) == 3 + 4 * 2 + 3


def test_estimate_prompt_tokens_embeddings_inputs() -> None:
    assert estimate_prompt_tokens({"input": "a" * 9}) == 3
    assert estimate_prompt_tokens({"input": ["abcd", "abcde"]}) == 1 + 2
    assert estimate_prompt_tokens({"input": [15339, 1917, 0]}) == 3
    assert estimate_prompt_tokens({"input": [[1, 2], [3, 4, 5]]}) == 5
    assert estimate_prompt_tokens({"model": "x"}) == 0


def test_requested_max_output_tokens_precedence() -> None:
    assert requested_max_output_tokens({"max_completion_tokens": 50, "max_tokens": 9}, 7) == 50
    assert requested_max_output_tokens({"max_tokens": 9}, 7) == 9
    assert requested_max_output_tokens({"max_tokens": None, "max_completion_tokens": True}, 7) == 7


def test_wants_json_response_formats() -> None:
    assert wants_json({"response_format": {"type": "json_object"}})
    assert wants_json({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})
    assert not wants_json({"response_format": {"type": "text"}})
    assert not wants_json({})


def test_build_chat_body_stream_forces_usage_and_keeps_options() -> None:
    body: dict[str, object] = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": False, "include_obfuscation": False},
        "cache": {"no-store": True},
    }
    sent = orjson.loads(build_chat_body(body, "qwen3-8b", stream=True))
    assert sent == {
        "model": "qwen3-8b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False},
    }
    assert body["model"] == "gpt-4o"
    assert body["stream_options"] == {"include_usage": False, "include_obfuscation": False}


def test_build_chat_body_stream_adds_options_when_absent() -> None:
    sent = orjson.loads(build_chat_body({"model": "a", "messages": []}, "b", stream=True))
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_build_chat_body_without_stream_drops_stream_fields() -> None:
    body = {"model": "a", "messages": [], "stream": False, "stream_options": {"x": 1}, "n": 2}
    assert orjson.loads(build_chat_body(body, "b", stream=False)) == {
        "model": "b",
        "messages": [],
        "n": 2,
    }


def test_build_embeddings_body_replaces_model() -> None:
    body = {"model": "embed", "input": ["a"], "dimensions": 256}
    sent = orjson.loads(build_embeddings_body(body, "text-embedding-3-small"))
    assert sent == {"model": "text-embedding-3-small", "input": ["a"], "dimensions": 256}


# Responses -----------------------------------------------------------------------------------


def test_parse_chat_response_golden() -> None:
    assert parse_chat_response(_golden("chat.json")) == ChatResult(
        usage=Usage(input_tokens=1362, output_tokens=14, cached_input_tokens=1152),
        text='{"category": "shipping", "urgent": false}',
        response_model="gpt-4o-mini-2024-07-18",
        finish_reason="stop",
    )


def test_parse_chat_response_tool_call_has_no_text() -> None:
    result = parse_chat_response(_golden("chat-tool-call.json"))
    assert result == ChatResult(Usage(88, 17, 0), "", "gpt-4o-2024-08-06", "tool_calls")


def test_parse_chat_response_without_usage() -> None:
    raw = b'{"object":"chat.completion","choices":[{"message":{"content":"ok"}}]}'
    assert parse_chat_response(raw) == ChatResult(None, "ok", None, None)


@pytest.mark.parametrize(
    "raw",
    [b"<html>Bad Gateway</html>", b"", b"[1, 2]", b'{"object": "list", "data": []}'],
)
def test_parse_chat_response_not_a_completion_raises(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_chat_response(raw)


def test_parse_chat_response_inband_error_quotes_scrubbed_message() -> None:
    raw = b'{"error": {"message": "overloaded, key sk-live-abcdef123456 throttled"}}'
    with pytest.raises(UpstreamProtocolError, match="overloaded") as info:
        parse_chat_response(raw)
    assert "abcdef123456" not in str(info.value)


def test_parse_embeddings_response_golden() -> None:
    assert parse_embeddings_response(_golden("embeddings.json")) == ChatResult(
        Usage(12, 0, 0), "", "text-embedding-3-small", None
    )


def test_parse_embeddings_response_rejects_chat_body() -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_embeddings_response(_golden("chat.json"))


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}, Usage(10, 2, 0)),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 8}}, Usage(10, 0, 8)),
        ({"prompt_tokens": 10, "prompt_tokens_details": None}, Usage(10, 0, 0)),
        ({"prompt_tokens": 10, "prompt_cache_hit_tokens": 6}, Usage(10, 0, 6)),
        ({"total_tokens": 12}, None),
        ({"prompt_tokens": "10"}, None),
    ],
)
def test_usage_of_variants(usage: Mapping[str, object], expected: Usage | None) -> None:
    assert usage_of(usage) == expected


# Streams -------------------------------------------------------------------------------------


def _chunks(name: str) -> list[StreamChunk]:
    parser = SSEParser()
    events = parser.feed(_golden(name))
    assert parser.flush() == b""
    return [parse_stream_event(e.data) for e in events if e.data is not None]


def test_stream_golden_text_usage_and_done() -> None:
    chunks = _chunks("stream.sse")
    assert "".join(c.text for c in chunks) == "The parcel left our warehouse on Tuesday."
    assert chunks[-1] == StreamChunk(None, "", usage_only=False, done=True, response_model=None)
    usage_chunk = chunks[-2]
    assert usage_chunk.usage_only
    assert usage_chunk.usage == Usage(2118, 9, 1920)
    assert [c.usage for c in chunks[:-2]] == [None] * (len(chunks) - 2)
    assert {c.response_model for c in chunks[:-1]} == {"gpt-4o-mini-2024-07-18"}


def test_stream_crlf_usage_rides_on_last_content_chunk() -> None:
    chunks = _chunks("stream-crlf.sse")
    assert "".join(c.text for c in chunks) == "Bonjour ! Votre commande est en route."
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0].usage == Usage(41, 11, 0)
    assert not with_usage[0].usage_only
    assert chunks[-1].done


def test_stream_tool_calls_have_no_text_and_usage_at_end() -> None:
    chunks = _chunks("stream-tools.sse")
    assert all(c.text == "" for c in chunks)
    assert chunks[-2].usage_only
    assert chunks[-2].usage == Usage(96, 18, 0)
    assert chunks[-1].done


def test_stream_concatenates_choice_deltas() -> None:
    data = b'{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}'
    assert parse_stream_event(data).text == "ab"


@pytest.mark.parametrize("data", [b"[DONE]", b" [DONE] ", b"[DONE]\r"])
def test_stream_done_marker_with_or_without_whitespace(data: bytes) -> None:
    assert parse_stream_event(data).done


@pytest.mark.parametrize("data", [b"not json", b'{"choices": [', b'"text"'])
def test_stream_non_json_raises(data: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_stream_event(data)


def test_stream_error_event_raises_with_message() -> None:
    data = b'{"error": {"message": "The server had an error", "type": "server_error"}}'
    with pytest.raises(UpstreamProtocolError, match="The server had an error"):
        parse_stream_event(data)


# Errors --------------------------------------------------------------------------------------


def test_classify_429_golden_is_rate_limited_with_retry_after() -> None:
    headers = {"Retry-After": "1", "x-ratelimit-remaining-tokens": "579"}
    error = classify_error(429, headers, _golden("error-429.json"))
    assert error.kind == "rate_limited"
    assert error.retryable
    assert error.retry_after == 1.0
    assert error.message.startswith("Rate limit reached for gpt-4o-mini")
    assert len(error.message) <= 300


def test_classify_retry_after_ms_wins_over_seconds() -> None:
    headers = {"retry-after-ms": "234", "retry-after": "1"}
    assert classify_error(429, headers, b"").retry_after == pytest.approx(0.234)


def test_classify_retry_after_http_date_needs_now() -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}
    now = 1445412480.0  # 07:28:00
    assert classify_error(429, headers, b"", now).retry_after == 30.0
    assert classify_error(429, headers, b"", now + 60).retry_after == 0.0
    assert classify_error(429, headers, b"").retry_after is None
    naive = {"Retry-After": "Wed, 21 Oct 2015 07:28:30 -0000"}
    assert classify_error(429, naive, b"", now).retry_after == 30.0


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf"])
def test_classify_retry_after_garbage_ignored(value: str) -> None:
    assert classify_error(429, {"Retry-After": value}, b"", 0.0).retry_after is None


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server", True),
        (502, "server", True),
        (503, "server", True),
        (504, "server", True),
        (529, "server", True),
        (599, "server", True),
        (408, "timeout", True),
        (401, "auth", False),
        (403, "auth", False),
        (400, "client", False),
        (404, "client", False),
        (422, "client", False),
        (302, "bad_response", True),
    ],
)
def test_classify_status_kinds(status: int, kind: str, retryable: bool) -> None:
    error = classify_error(status, {}, b"")
    assert (error.kind, error.status, error.retryable) == (kind, status, retryable)


def test_classify_non_json_body_uses_status_text() -> None:
    error = classify_error(502, {}, b"<html><body>502 Bad Gateway</body></html>")
    assert error == UpstreamError("server", 502, True, None, "HTTP 502 Bad Gateway")
    assert classify_error(529, {}, b"").message == "HTTP 529"


def test_classify_401_golden_never_echoes_the_key() -> None:
    error = classify_error(401, {}, _golden("error-401.json"))
    assert error.kind == "auth"
    assert "sk-" not in error.message
    assert "Xy9Z" not in error.message
    assert error.message.startswith("Incorrect API key provided: [redacted]")


def test_classify_other_error_shapes() -> None:
    vllm = b'{"object":"error","message":"max_tokens is too large","type":"BadRequestError"}'
    assert classify_error(400, {}, vllm).message == "max_tokens is too large"
    assert classify_error(400, {}, b'{"error": "bad  model\\nname"}').message == "bad model name"
    assert classify_error(422, {}, b'{"detail": "field required"}').message == "field required"


def test_classify_message_truncated() -> None:
    body = orjson.dumps({"error": {"message": "word " * 200}})
    assert len(classify_error(400, {}, body).message) == 300


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-AbCdEf0123456789AbCdEf0123456789",
        "sk-ant-api03-AbCdEf0123456789",
        "gsk_AbCdEf0123456789AbCdEf",
        "xai-AbCdEf0123456789",
        "AIzaSyAbCdEf0123456789AbCdEf",
        "0123456789abcdef0123456789abcdef",
    ],
)
def test_scrub_removes_key_shapes(secret: str) -> None:
    assert secret[-6:] not in scrub(f"invalid key {secret} provided")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
        ("url ?key=AbC123&x=1", "url ?key=[redacted]&x=1"),
        ('api_key: "hunter2"', 'api_key: "[redacted]"'),
        ('{"openai_api_key": "hunter2"}', '{"openai_api_key": "[redacted]"}'),
        ("monkey: banana", "monkey: banana"),
        ("Please try again in 234ms.", "Please try again in 234ms."),
    ],
)
def test_scrub_cases(text: str, expected: str) -> None:
    assert scrub(text) == expected


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=8)
)
def test_scrub_any_sk_key_is_removed(tail: str) -> None:
    text = scrub(f"Incorrect API key provided: sk-{tail}. See docs.")
    assert not re.search(r"sk-[A-Za-z0-9]", text)


def test_error_body_is_openai_shaped() -> None:
    body = orjson.loads(error_body("budget exhausted", "insufficient_quota", "budget_blocked"))
    assert body == {
        "error": {
            "message": "budget exhausted",
            "type": "insufficient_quota",
            "param": None,
            "code": "budget_blocked",
        }
    }
