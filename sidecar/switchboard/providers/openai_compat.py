"""Pure: the OpenAI-compatible wire schema (chat completions and embeddings).

Reads client requests (token estimates, options), builds the upstream bodies, parses upstream
answers and stream events into `Usage` and text, and says what an upstream error means for
failover. Every provider that speaks this API goes through here; no I/O.
"""

from __future__ import annotations

import datetime
import email.utils
import http
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeGuard

import orjson

from switchboard.pricing.cost import Usage

# Switchboard's own per-request field (cache opt-out, see `switchboard.cache.keys`); providers
# reject unknown fields, so it is never sent upstream.
_OWN_FIELDS = ("cache",)
_MESSAGE_MAX = 300


class UpstreamProtocolError(ValueError):
    """The upstream answered, but not with what this API promises."""


# Requests ------------------------------------------------------------------------------------


def estimate_prompt_tokens(body: Mapping[str, object]) -> int:
    """A cheap prompt-size estimate: about 4 characters per token, plus framing per message."""
    messages = body.get("messages")
    if isinstance(messages, list):
        chars = sum(_content_chars(m.get("content")) for m in messages if isinstance(m, Mapping))
        return _ceil_quarter(chars) + 4 * len(messages) + 3
    return _input_tokens(body.get("input"))


def _content_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(text)
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(text := part.get("text"), str)
        )
    return 0


def _input_tokens(value: object) -> int:
    """Embeddings `input`: a string, a token list, or a list of either."""
    if isinstance(value, str):
        return _ceil_quarter(len(value))
    if isinstance(value, list):
        if all(isinstance(x, int) for x in value):
            return len(value)
        return sum(_input_tokens(x) for x in value)
    return 0


def _ceil_quarter(chars: int) -> int:
    return -(-chars // 4)


def requested_max_output_tokens(body: Mapping[str, object], default: int) -> int:
    """The client's output limit: `max_completion_tokens`, else `max_tokens`, else `default`."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def wants_json(body: Mapping[str, object]) -> bool:
    """Whether the client asked for JSON output (`response_format` json_object or json_schema)."""
    fmt = body.get("response_format")
    return isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema")


def build_chat_body(body: Mapping[str, object], upstream_model: str, *, stream: bool) -> bytes:
    """The client's chat body for the upstream: `model` replaced and `stream` set as given.

    Streaming always asks for the usage chunk (`stream_options.include_usage`), other
    `stream_options` kept; without streaming `stream_options` is dropped (OpenAI rejects it).
    """
    out = _upstream_fields(body, upstream_model)
    out.pop("stream_options", None)
    if stream:
        options = body.get("stream_options")
        kept = dict(options) if isinstance(options, Mapping) else {}
        out["stream"] = True
        out["stream_options"] = {**kept, "include_usage": True}
    else:
        out.pop("stream", None)
    return orjson.dumps(out)


def build_embeddings_body(body: Mapping[str, object], upstream_model: str) -> bytes:
    """The client's embeddings body for the upstream, with `model` replaced."""
    return orjson.dumps(_upstream_fields(body, upstream_model))


def _upstream_fields(body: Mapping[str, object], upstream_model: str) -> dict[str, object]:
    out = {k: v for k, v in body.items() if k not in _OWN_FIELDS}
    out["model"] = upstream_model
    return out


# Responses -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What a whole (non-streamed) answer says: usage, the first choice's text, model, reason."""

    usage: Usage | None
    text: str
    response_model: str | None
    finish_reason: str | None


def usage_of(obj: Mapping[str, object]) -> Usage | None:
    """`Usage` from an OpenAI `usage` object; None when it holds no token counts.

    Cached input comes from `prompt_tokens_details.cached_tokens`, or from DeepSeek's
    `prompt_cache_hit_tokens` when that is all there is.
    """
    prompt = _int(obj.get("prompt_tokens"))
    completion = _int(obj.get("completion_tokens"))
    if prompt is None and completion is None:
        return None
    details = obj.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if _is_mapping(details) else None
    if cached is None:
        cached = _int(obj.get("prompt_cache_hit_tokens"))
    return Usage(prompt or 0, completion or 0, cached or 0)


def parse_chat_response(raw: bytes) -> ChatResult:
    """A chat completion body; `UpstreamProtocolError` if it is not one."""
    obj = _json_object(raw)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise UpstreamProtocolError(_not_a("chat completion", obj))
    first = choices[0] if choices and _is_mapping(choices[0]) else {}
    message = first.get("message")
    content = message.get("content") if _is_mapping(message) else None
    return ChatResult(
        usage=_usage_field(obj),
        text=content if isinstance(content, str) else "",
        response_model=_str(obj.get("model")),
        finish_reason=_str(first.get("finish_reason")),
    )


def parse_embeddings_response(raw: bytes) -> ChatResult:
    """An embeddings body (text is empty; usage counts prompt tokens only)."""
    obj = _json_object(raw)
    if not isinstance(obj.get("data"), list):
        raise UpstreamProtocolError(_not_a("embeddings list", obj))
    return ChatResult(_usage_field(obj), "", _str(obj.get("model")), None)


class StreamChunk(NamedTuple):
    """One streamed event: its text delta, the usage if it carries it, and what kind it is.
    (A NamedTuple, not a frozen dataclass: one is built per event, at a third of the cost.)"""

    usage: Usage | None
    text: str
    usage_only: bool
    done: bool
    response_model: str | None


_DONE = StreamChunk(None, "", usage_only=False, done=True, response_model=None)


def parse_stream_event(data: bytes) -> StreamChunk:
    """One SSE `data` payload of a chat stream: `[DONE]`, a delta chunk, or the usage chunk."""
    if data[:1] != b"{" and data.strip() == b"[DONE]":  # (no strip for the usual JSON chunk)
        return _DONE
    obj = _json_object(data)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise UpstreamProtocolError(_not_a("chat completion chunk", obj))
    usage = _usage_field(obj)
    return StreamChunk(
        usage,
        _delta_text(choices[0]) if len(choices) == 1 else "".join(map(_delta_text, choices)),
        not choices and usage is not None,
        False,
        _str(obj.get("model")),
    )


def _delta_text(choice: object) -> str:
    delta = choice.get("delta") if _is_mapping(choice) else None
    content = delta.get("content") if _is_mapping(delta) else None
    return content if isinstance(content, str) else ""


def _json_object(raw: bytes) -> Mapping[str, object]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"upstream sent invalid JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise UpstreamProtocolError(f"upstream sent a JSON {type(obj).__name__}, not an object")
    return obj


def _not_a(what: str, obj: Mapping[str, object]) -> str:
    """Why `obj` was refused; quotes an in-band error's message (scrubbed) when there is one."""
    message = _error_message(obj)
    return f"upstream error: {message}" if message else f"upstream body is not a {what}"


def _usage_field(obj: Mapping[str, object]) -> Usage | None:
    usage = obj.get("usage")
    return usage_of(usage) if _is_mapping(usage) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_mapping(value: object) -> TypeGuard[Mapping[str, object]]:
    """`isinstance(value, Mapping)`, with fast paths for the dicts orjson makes and for None (the
    ABC check costs four times as much, several times per streamed event)."""
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


# Errors --------------------------------------------------------------------------------------

ErrorKind = Literal[
    "rate_limited", "server", "auth", "client", "bad_response", "timeout", "connect"
]


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """What went wrong upstream and whether another attempt may succeed.

    `retryable` means "try again (here after a backoff, or at the next target)". `auth` is not
    retryable on the same target, but the pipeline still moves on; `client` means the request
    itself is bad and goes back to the client as it is. `message` is safe to log and return.
    """

    kind: ErrorKind
    status: int | None
    retryable: bool
    retry_after: float | None
    message: str


def classify_error(
    status: int, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> UpstreamError:
    """What an upstream non-2xx answer means for retry and failover.

    `now` (epoch seconds) is needed only to turn an HTTP-date `Retry-After` into seconds;
    without it only the delay forms (`retry-after-ms`, `Retry-After: <seconds>`) are read.
    """
    kind: ErrorKind
    if status == 429:
        kind, retryable = "rate_limited", True
    elif status == 408:
        kind, retryable = "timeout", True
    elif status in (401, 403):
        kind, retryable = "auth", False
    elif 400 <= status < 500:
        kind, retryable = "client", False
    elif 500 <= status < 600:
        kind, retryable = "server", True
    else:  # a redirect or other surprise: the provider is misconfigured, not the request
        kind, retryable = "bad_response", True
    message = _body_message(body) or _status_text(status)
    return UpstreamError(kind, status, retryable, retry_after_seconds(headers, now), message)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `Retry-After` (seconds or HTTP-date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _non_negative(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None or now is None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, of unknown origin (RFC 5322)
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def _non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None


def _body_message(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return _error_message(obj) if isinstance(obj, dict) else None


def _error_message(obj: Mapping[str, object]) -> str | None:
    """The message of an OpenAI-style error (`{"error": {"message"}}`, `{"error": "..."}`, or a
    vLLM/FastAPI-style top-level `message` / `detail`), scrubbed and truncated."""
    error = obj.get("error")
    if isinstance(error, Mapping):
        error = error.get("message")
    candidates = (error, obj.get("message"), obj.get("detail"))
    text = next((c for c in candidates if isinstance(c, str) and c.strip()), None)
    return _clip(scrub(" ".join(text.split()))) if text else None


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


# Keys and bearer tokens as providers echo them in errors ("Incorrect API key provided:
# sk-proj-****abcd"), plus `key=...` assignments and any long mixed letters-and-digits token.
_SECRETS = (
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"\b(?:sk|pk|rk|gsk|xai|hf)[-_][A-Za-z0-9_\-*]{4,}"), "[redacted]"),
    (re.compile(r"\bAIza[A-Za-z0-9_\-]{10,}"), "[redacted]"),
    (
        re.compile(
            r"(?i)(?<![a-z])((?:api[-_]?)?(?:key|token|secret|password)[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s\"'&,;]+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{32,}", re.ASCII), "[redacted]"),
)


def scrub(text: str) -> str:
    """`text` with anything that looks like an API key or bearer token replaced by `[redacted]`."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    """An OpenAI-style error object, as the sidecar returns its own errors to clients."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )
