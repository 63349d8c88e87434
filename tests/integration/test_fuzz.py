"""Hypothesis throws malformed requests at every endpoint of a real sidecar process (raw HTTP
with httpx, a healthy mock provider behind it).

Whatever arrives, the sidecar answers: never a 5xx caused by the input, never a traceback; an
invalid request gets a 4xx with an OpenAI-style `{"error": {...}}` body, a valid one that
routes to the healthy mock gets its 200; and the process is alive and healthy afterwards.
About 300 examples in all, derandomized so that a run is repeatable.

Positive `max_tokens` values are kept small: the mock really generates that many tokens, so a
huge valid value would test the mock's memory, not the sidecar.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, policy, write_manifests
from tests.support.wire import price_field

pytestmark = pytest.mark.integration

MAX_BODY = 16 * 1024
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
GET_PATHS = ("/v1/models", "/models", "/healthz", "/readyz", "/metrics", "/debug/targets")
POST_PATHS = (CHAT, "/chat/completions", EMBEDDINGS, "/embeddings")
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Stack:
    mock: MockProvider
    sidecar: Sidecar
    http: httpx.Client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with MockProvider("fuzz") as mock:
        doc = policy(
            providers=[
                {"name": "fuzz", "baseURL": mock.url, "region": "us"},
                {"name": "fuzz-eu", "baseURL": mock.url, "region": "eu"},
            ],
            models=[
                {"name": "gpt-4o-mini", "provider": "fuzz", "price": price_field("0.15", "0.6")},
                {"name": "gpt-4o", "provider": "fuzz", "price": price_field("2.5", "10")},
                {"name": "eu-mini", "provider": "fuzz-eu", "price": price_field("0.15", "0.6")},
                {
                    "name": "text-embedding-3-small",
                    "provider": "fuzz",
                    "type": "embedding",
                    "price": price_field("0.02", "0"),
                },
            ],
            routes=[
                {
                    "name": "cached",
                    "match": {"tasks": ["cache-me"]},
                    "targets": [{"model": "gpt-4o-mini"}],
                    "cache": {"mode": "exact", "ttlSeconds": 600},
                },
                {
                    "name": "cascade",
                    "match": {"tasks": ["cascade"]},
                    "strategy": "cascade",
                    "targets": [{"model": "gpt-4o-mini"}, {"model": "gpt-4o"}],
                },
                {"name": "chat", "targets": [{"model": "gpt-4o-mini"}], "retry": {"attempts": 1}},
                {"name": "embed", "targets": [{"model": "text-embedding-3-small"}]},
            ],
            dataResidency={"eu": ["eu"]},
            limits={"maxBodyBytes": MAX_BODY},
        )
        path = write_manifests(tmp_path_factory.mktemp("fuzz") / "policy.yaml", doc)
        with Sidecar(path) as sidecar, httpx.Client(base_url=sidecar.base, timeout=10) as http:
            yield Stack(mock, sidecar, http)


# ---- strategies -----------------------------------------------------------------------------

# Integers: negative, zero, small positive, and beyond 64 bits (which parse as floats).
INTS = st.integers(max_value=64) | st.integers(min_value=2**64, max_value=2**80)
SCALARS = (
    st.none()
    | st.booleans()
    | INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Header values as HTTP allows them: visible ASCII, inner spaces, no leading or trailing ones.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
ROLES = st.sampled_from(["system", "user", "assistant", "developer", "tool"])
GOOD_MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": st.text(max_size=60)})
GOOD_MESSAGES = st.lists(GOOD_MESSAGE, min_size=1, max_size=3)
JUNK_MESSAGE = st.fixed_dictionaries({}, optional={"role": JSON, "content": JSON, "name": JSON})
MESSAGES = GOOD_MESSAGES | st.lists(GOOD_MESSAGE | JUNK_MESSAGE | JSON, max_size=3) | JSON
SMALL = st.integers(min_value=1, max_value=24)
STREAM_OPTIONS = st.fixed_dictionaries({}, optional={"include_usage": st.booleans() | JSON})
RESPONSE_FORMAT = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "json_object", "json_schema"]) | JSON}
)
CHAT_FIELDS = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "gpt-4o", "whatever"]) | JSON, "messages": MESSAGES},
    optional={
        "stream": st.booleans() | st.none() | JSON,
        "stream_options": STREAM_OPTIONS | st.none() | JSON,
        "max_tokens": SMALL | st.none() | JSON,
        "max_completion_tokens": SMALL | st.none() | JSON,
        "n": st.integers(min_value=1, max_value=3) | st.none() | JSON,
        "temperature": st.floats(min_value=0, max_value=2) | JSON,
        "response_format": RESPONSE_FORMAT | JSON,
        "cache": st.booleans() | st.fixed_dictionaries({"no-cache": st.booleans()}) | JSON,
        "user": st.text(max_size=10) | JSON,
        "tools": JSON,
    },
)
EXTRA_FIELDS = st.dictionaries(st.text(min_size=1, max_size=10), JSON, max_size=2)
CHAT_BODIES = st.builds(lambda extra, fields: {**extra, **fields}, EXTRA_FIELDS, CHAT_FIELDS)
TOKENS = st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=8)
GOOD_INPUT = (
    st.text(min_size=1, max_size=60)
    | st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4)
    | TOKENS
    | st.lists(TOKENS, min_size=1, max_size=3)
)
EMBEDDING_BODIES = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["text-embedding-3-small", "anything"]) | JSON,
        "input": GOOD_INPUT | JSON,
    },
    optional={
        "encoding_format": st.sampled_from(["float", "base64"]) | JSON,
        "dimensions": JSON,
        "user": JSON,
    },
)
REQUEST_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "X-Switchboard-Task": st.sampled_from(["cache-me", "cascade", ""]) | HEADER_TEXT,
        "X-Switchboard-Region": st.sampled_from(["eu", "EU", "us"]) | HEADER_TEXT,
        "X-Switchboard-Class": st.sampled_from(["realtime", "batch", "Critical"]) | HEADER_TEXT,
        "X-Switchboard-Feature": HEADER_TEXT,
        "X-Switchboard-Team": HEADER_TEXT,
        "Content-Type": st.sampled_from(["application/json", "text/plain"]) | HEADER_TEXT,
        "Cache-Control": st.sampled_from(["no-cache", "max-age=0"]) | HEADER_TEXT,
        "traceparent": st.sampled_from(
            ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-00-00-00"]
        )
        | HEADER_TEXT,
    },
)


# ---- the oracle -----------------------------------------------------------------------------


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _nullable(body: Mapping[str, Any], name: str, valid: bool) -> bool:
    return name not in body or body[name] is None or valid


def chat_is_valid(body: object) -> bool:
    """What the OpenAI API contract the sidecar relies on says about a chat body."""
    if not isinstance(body, dict):
        return False
    model, messages = body.get("model"), body.get("messages")
    if not (isinstance(model, str) and model) or not (isinstance(messages, list) and messages):
        return False
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return False
    return (
        _nullable(body, "stream", isinstance(body.get("stream"), bool))
        and _nullable(body, "stream_options", isinstance(body.get("stream_options"), dict))
        and _nullable(body, "max_tokens", _positive_int(body.get("max_tokens")))
        and _nullable(
            body, "max_completion_tokens", _positive_int(body.get("max_completion_tokens"))
        )
        and _nullable(body, "n", _positive_int(body.get("n")))
    )


def chat_is_well_formed(body: object) -> bool:
    """Valid, with every message a plain role/content pair: the mock must answer it."""
    if not isinstance(body, dict) or not chat_is_valid(body):
        return False
    return all(
        set(m) == {"role", "content"} and isinstance(m["content"], str) for m in body["messages"]
    )


def embeddings_input_is_valid(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) for v in value):
        return True
    tokens = [value] if all(isinstance(v, int) for v in value) else value
    return all(
        isinstance(t, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in t)
        for t in tokens
    )


def embeddings_are_valid(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    model = body.get("model")
    return isinstance(model, str) and bool(model) and embeddings_input_is_valid(body.get("input"))


def restricted(headers: Mapping[str, str], response: httpx.Response) -> bool:
    """The request comes from region eu, which no provider of the policy may serve, and was not
    answered from the cache (a hit sends nothing to any provider)."""
    from_eu = headers.get("X-Switchboard-Region", "").lower() == "eu"
    return from_eu and response.headers.get("x-switchboard-cache") != "hit"


def check(response: httpx.Response) -> None:
    """No 5xx, no traceback; every error is an OpenAI-style JSON error object."""
    status, body = response.status_code, response.content
    if currently_in_test_context():
        event(f"HTTP {status}")  # shown by --hypothesis-show-statistics
    assert status < 500, (status, body[:500])
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    if status >= 400 and response.request.method != "HEAD":
        doc = json.loads(body)
        assert isinstance(doc, dict) and set(doc) >= {"error"}, doc
        error = doc["error"]
        assert isinstance(error, dict), doc
        assert isinstance(error.get("message"), str) and error["message"], doc
        assert isinstance(error.get("type"), str) and error["type"], doc


# 1000 levels: orjson parses it (its limit is 1024), Python's json cannot even write it.
DEEP_CHAT = b'{"model": "m", "messages": [{"role": "user"}], "tools": %s}' % (
    b"[" * 1000 + b"]" * 1000
)
DEEP_EMBEDDINGS = b'{"model": "e", "input": %s}' % (b"[" * 1000 + b"1" + b"]" * 1000)


def encode(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def nested(depth: int, leaf: object = "a") -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# ---- the tests ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=110)
@given(body=CHAT_BODIES, headers=REQUEST_HEADERS)
@example(body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, headers={})
@example(body={"model": "m", "messages": [{"role": "user", "content": nested(300)}]}, headers={})
@example(body={"model": "m", "messages": [{"role": "user"}], "stream": None}, headers={})
@example(
    body={"model": "m", "messages": [{"role": "user"}], "cache": nested(260)},
    headers={"X-Switchboard-Task": "cache-me"},
)
def test_chat_completions_survive_malformed_bodies(
    stack: Stack, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = stack.http.post(CHAT, content=encode(body), headers=headers)
    check(response)
    if not chat_is_valid(body):
        assert response.status_code == 400, (body, response.text)
    elif restricted(headers, response):
        assert response.status_code == 403, response.text
    elif chat_is_well_formed(body):
        assert response.status_code == 200, (body, response.text)
        assert response.headers["x-switchboard-provider"] == "fuzz"
        if body.get("stream") is True:
            assert response.text.endswith("data: [DONE]\n\n"), response.text[-300:]
        else:
            assert response.json()["object"] == "chat.completion"


@settings(FUZZ, max_examples=60)
@given(body=EMBEDDING_BODIES, headers=REQUEST_HEADERS)
@example(body={"model": "text-embedding-3-small", "input": "hello"}, headers={})
@example(body={"model": "e", "input": nested(400)}, headers={})
def test_embeddings_survive_malformed_bodies(
    stack: Stack, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = stack.http.post(EMBEDDINGS, content=encode(body), headers=headers)
    check(response)
    if not embeddings_are_valid(body):
        assert 400 <= response.status_code < 500, (body, response.text)
    elif restricted(headers, response):
        assert response.status_code == 403, response.text
    else:
        assert response.status_code == 200, (body, response.text)
        assert response.json()["object"] == "list"


@settings(FUZZ, max_examples=60)
@given(
    path=st.sampled_from(POST_PATHS),
    raw=st.binary(max_size=300)
    | JSON.map(encode)
    | st.sampled_from([b"", b"null", b"NaN", b"[1, Infinity]", b'{"model": "m"', b"\xff\xfe{"]),
    encoding=st.none() | st.sampled_from(["gzip", "deflate", "br", "zstd", "identity", "x-junk"]),
)
@example(path=CHAT, raw=DEEP_CHAT, encoding=None)
@example(path=EMBEDDINGS, raw=DEEP_EMBEDDINGS, encoding=None)
@example(path=CHAT, raw=b"not gzip", encoding="gzip")
@example(path=EMBEDDINGS, raw=b"x", encoding="deflate")
def test_post_endpoints_survive_junk_bytes_and_wrong_json_shapes(
    stack: Stack, path: str, raw: bytes, encoding: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    response = stack.http.post(path, content=raw, headers=headers)
    check(response)
    if encoding in (None, "identity"):
        assert response.status_code == 400, (raw, response.text)
    else:
        assert response.status_code == 415, (raw, response.text)
        assert response.json()["error"]["code"] == "unsupported_content_encoding"


def test_compressed_valid_body_gets_415_naming_the_encoding(stack: Stack) -> None:
    body = encode({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    response = stack.http.post(
        CHAT, content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    check(response)
    assert response.status_code == 415
    assert "'gzip' is not supported" in response.json()["error"]["message"]


@settings(FUZZ, max_examples=25)
@given(
    size=st.integers(min_value=MAX_BODY - 400, max_value=MAX_BODY + 400),
    unit=st.sampled_from(["x", "é", "€", "😀", "\x00"]),
    chunked=st.booleans(),
)
def test_bodies_near_the_size_limit_get_413_exactly_when_over_it(
    stack: Stack, size: int, unit: str, chunked: bool
) -> None:
    filler = unit * (size // len(unit.encode()))
    raw = encode({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": filler}]})
    content: bytes | Iterator[bytes] = raw
    if chunked:  # no Content-Length: the limit holds on the bytes actually read
        content = iter([raw[i : i + 4096] for i in range(0, len(raw), 4096)])
    response = stack.http.post(CHAT, content=content, headers={"Content-Type": "application/json"})
    check(response)
    if len(raw) > MAX_BODY:
        assert response.status_code == 413, (len(raw), response.text)
        assert response.json()["error"]["code"] == "request_too_large"
    else:
        assert response.status_code == 200, (len(raw), response.text)


QUERY = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=24)), max_size=4)
RAW_QUERY = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])


@settings(FUZZ, max_examples=50)
@given(
    path=st.sampled_from(GET_PATHS + POST_PATHS)
    | st.sampled_from(["/v1/", "/v1/../v1/models", "/v1/models/%ff", "/%00", "/v1/chat"])
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(
        lambda s: "/v1/" + s.replace("?", "").replace("#", "")
    ),
    method=METHODS,
    query=QUERY,
    raw_query=RAW_QUERY,
    body=st.none() | st.binary(max_size=40),
)
def test_every_endpoint_survives_junk_methods_paths_and_query_strings(
    stack: Stack, path: str, method: str, query: list[tuple[str, str]], raw_query: str, body: bytes
) -> None:
    url = httpx.URL(stack.sidecar.base + path, params=query)
    if raw_query:
        url = url.copy_with(query=raw_query.replace("#", "").encode())
    response = stack.http.request(method, url, content=body)
    check(response)
    if method == "GET" and path in GET_PATHS:
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", ["FOO", "GETT"])
def test_unknown_method_tokens_get_400_without_a_traceback(stack: Stack, method: str) -> None:
    """aiohttp's HTTP parser refuses these before the app sees them (plain-text 400)."""
    response = stack.http.request(method, "/v1/models")
    assert response.status_code == 400
    assert b"Traceback" not in response.content and b'File "' not in response.content


def test_sidecar_answers_normally_after_the_fuzzing(stack: Stack) -> None:
    answer = stack.http.post(
        CHAT,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still there?"}]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "tok " * 16
    health = stack.http.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert stack.sidecar.alive()
    log = stack.sidecar.log()
    assert "unexpected error" not in log, log[-3000:]
    assert not [line for line in log.splitlines() if "/switchboard/" in line], log[-3000:]
