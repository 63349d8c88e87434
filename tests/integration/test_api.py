"""The sidecar's OpenAI API as an application sees it: real mock provider and sidecar processes,
the official openai SDK as the client (raw HTTP where the SDK hides what matters)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.conftest import client_for
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, policy, write_manifests
from tests.support.wire import metric, post_json, price, price_field

pytestmark = pytest.mark.integration

OPENAI_KEY = "sk-test-openai-3f9a1c7e5b"
LOCKED_RIGHT_KEY = "sk-locked-right-8d2e4a"
LOCKED_WRONG_KEY = "sk-locked-wrong-71c5b9e0"
MINI_PRICE = ("0.15", "0.6")
EMBED_PRICE = ("0.02", "0")
MAX_BODY = 4096
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


@dataclass
class Stack:
    openai_mock: MockProvider
    locked_mock: MockProvider
    sidecar: Sidecar
    client: openai.OpenAI


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        MockProvider("openai", api_key=OPENAI_KEY) as openai_mock,
        MockProvider("locked", api_key=LOCKED_RIGHT_KEY) as locked_mock,
    ):
        doc = policy(
            providers=[
                {
                    # A host name, not an IP: an HTTP client's cookie jar takes cookies from it.
                    "name": "openai",
                    "baseURL": openai_mock.url.replace("127.0.0.1", "localhost"),
                    "apiKey": {"env": "TEST_OAI_KEY"},
                },
                {
                    "name": "locked",
                    "baseURL": locked_mock.url,
                    "apiKey": {"secretKeyRef": {"name": "llm-keys", "key": "locked"}},
                },
            ],
            models=[
                {"name": "gpt-4o-mini", "provider": "openai", "price": price_field(*MINI_PRICE)},
                {
                    "name": "text-embedding-3-small",
                    "provider": "openai",
                    "type": "embedding",
                    "price": price_field(*EMBED_PRICE),
                },
                {"name": "locked-model", "provider": "locked", "price": price_field("1", "2")},
            ],
            routes=[
                {
                    "name": "cached",
                    "match": {"tasks": ["cache-me"]},
                    "targets": [{"model": "gpt-4o-mini"}],
                    "cache": {"mode": "exact", "ttlSeconds": 600},
                },
                {
                    "name": "locked",
                    "match": {"requestedModels": ["locked-*"]},
                    "targets": [{"model": "locked-model"}],
                    "retry": {"attempts": 1},
                },
                {
                    "name": "chat",
                    "match": {"requestedModels": ["gpt-*"]},
                    "targets": [{"model": "gpt-4o-mini"}],
                },
                {"name": "embed", "targets": [{"model": "text-embedding-3-small"}]},
            ],
            limits={"maxBodyBytes": MAX_BODY},
        )
        config = write_manifests(tmp_path_factory.mktemp("api") / "policy.yaml", doc)
        # The secretKeyRef key arrives as the env var the webhook would create.
        env = {"TEST_OAI_KEY": OPENAI_KEY, "SWITCHBOARD_KEY_LOCKED": LOCKED_WRONG_KEY}
        with Sidecar(config, env=env) as sidecar:
            yield Stack(openai_mock, locked_mock, sidecar, client_for(sidecar, timeout=10))


def feature(name: str) -> dict[str, str]:
    """Attribute a request to its own feature, so that its metrics stand apart."""
    return {"X-Switchboard-Feature": name}


def billed(mock: MockProvider, model: str) -> tuple[int, int]:
    """Input and output tokens the mock has billed for `model` (what reached the client)."""
    stats = mock.stats()["by_model"].get(model, {"input_tokens": 0, "output_tokens": 0})
    return stats["input_tokens"], stats["output_tokens"]


def test_chat_headers_name_the_target_and_price_the_reported_usage(stack: Stack) -> None:
    raw = stack.client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, max_tokens=7, extra_headers=feature("chat-plain")
    )
    reply = raw.parse()

    assert reply.choices[0].message.content == "tok " * 7
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    usage = reply.usage
    assert raw.headers["x-switchboard-provider"] == "openai"
    assert raw.headers["x-switchboard-model"] == "gpt-4o-mini"
    assert raw.headers["x-switchboard-route"] == "chat"
    assert raw.headers["x-switchboard-cache"] == "bypass"
    assert raw.headers["x-switchboard-attempts"] == "1"
    assert float(raw.headers["x-switchboard-overhead-ms"]) >= 0
    expected = price(usage.prompt_tokens, usage.completion_tokens, *MINI_PRICE)
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == expected
    total = metric(stack.sidecar.base, "switchboard_cost_usd_total", feature="chat-plain")
    assert total == pytest.approx(float(expected))


def test_upstream_gets_the_policy_key_and_the_provider_model(stack: Stack) -> None:
    stack.client.chat.completions.create(model="gpt-4.1", messages=HELLO)

    sent = stack.openai_mock.requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent["body"]["model"] == "gpt-4o-mini"


def test_a_cookie_a_provider_sets_is_never_sent_back_with_later_requests(stack: Stack) -> None:
    # Providers' edge proxies set cookies; the sidecar carries every user's requests, so one
    # answer's cookie must not ride along with the next request (nor reach the application).
    first = stack.client.chat.completions.with_raw_response.create(model="gpt-4.1", messages=HELLO)
    stack.client.chat.completions.create(model="gpt-4.1", messages=HELLO)

    sent = stack.openai_mock.requests()[-2:]
    assert [r["headers"].get("cookie") for r in sent] == [None, None]
    assert "set-cookie" not in first.headers


def test_requests_plain_and_streamed_reuse_one_upstream_connection(stack: Stack) -> None:
    stack.openai_mock.reset()
    for stream in (False, True, False, True, False):
        answer = stack.client.chat.completions.create(
            model="gpt-4.1", messages=HELLO, max_tokens=3, stream=stream
        )
        if stream:
            list(answer)  # type: ignore[call-overload]
    ports = {r["client_port"] for r in stack.openai_mock.requests()}
    assert len(stack.openai_mock.requests()) == 5
    assert len(ports) == 1 and None not in ports


def test_stream_reassembles_and_hides_the_usage_chunk_from_a_client_that_did_not_ask(
    stack: Stack,
) -> None:
    raw = stack.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO, max_tokens=5, stream=True
    )
    chunks = list(raw.parse())

    assert raw.headers["x-switchboard-model"] == "gpt-4o-mini"
    assert raw.headers["x-switchboard-route"] == "chat"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok " * 5
    assert all(c.usage is None and c.choices for c in chunks)
    options = stack.openai_mock.requests()[-1]["body"]["stream_options"]
    assert options == {"include_usage": True}


def test_stream_gives_the_usage_chunk_to_a_client_that_asked(stack: Stack) -> None:
    stream = stack.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok " * 4
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_stream_cost_comment_prices_the_usage_chunk(stack: Stack) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": HELLO,
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = post_json(stack.sidecar.base, "/v1/chat/completions", body)

    assert reply.status == 200
    usage = reply.sse_chunks()[-1]["usage"]
    last_two = [line for line in reply.lines() if line][-2:]
    assert last_two[0].startswith(": x-switchboard-cost-usd=")
    assert last_two[1] == "data: [DONE]"
    expected = price(usage["prompt_tokens"], usage["completion_tokens"], *MINI_PRICE)
    assert reply.cost_comment() == expected


def test_stream_without_usage_is_still_priced_from_the_hidden_usage(stack: Stack) -> None:
    before = billed(stack.openai_mock, "gpt-4o-mini")
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 3, "stream": True}
    reply = post_json(stack.sidecar.base, "/v1/chat/completions", body)
    after = billed(stack.openai_mock, "gpt-4o-mini")

    assert reply.status == 200
    assert all(c["choices"] and c.get("usage") is None for c in reply.sse_chunks())
    assert reply.cost_comment() == price(after[0] - before[0], after[1] - before[1], *MINI_PRICE)


def test_embeddings_are_served_and_priced(stack: Stack) -> None:
    raw = stack.client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"]
    )
    reply = raw.parse()

    assert [len(d.embedding) for d in reply.data] == [8, 8]
    assert raw.headers["x-switchboard-route"] == "embed"
    assert raw.headers["x-switchboard-model"] == "text-embedding-3-small"
    expected = price(reply.usage.prompt_tokens, 0, *EMBED_PRICE)
    assert expected > 0
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == expected


def test_models_lists_the_policy_models(stack: Stack) -> None:
    listed = {m.id: m.owned_by for m in stack.client.models.list()}

    assert listed == {
        "gpt-4o-mini": "openai",
        "text-embedding-3-small": "openai",
        "locked-model": "locked",
    }


def test_identical_request_is_a_free_cache_hit_counted_as_saved(stack: Stack) -> None:
    headers = {"X-Switchboard-Task": "cache-me", **feature("cache-test")}
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "cache this"}]
    before = stack.openai_mock.stats()["requests"]
    first = stack.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers=headers
    )
    second = stack.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers=headers
    )

    usage = first.parse().usage
    assert usage is not None
    paid = price(usage.prompt_tokens, usage.completion_tokens, *MINI_PRICE)
    assert first.headers["x-switchboard-cache"] == "miss"
    assert Decimal(first.headers["x-switchboard-cost-usd"]) == paid
    assert second.headers["x-switchboard-cache"] == "hit"
    assert Decimal(second.headers["x-switchboard-cost-usd"]) == 0
    assert second.headers["x-switchboard-route"] == "cached"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert stack.openai_mock.stats()["requests"] == before + 1
    base = stack.sidecar.base
    labels = {"feature": "cache-test", "route": "cached"}
    assert metric(base, "switchboard_cache_hits_total", **labels) == 1
    assert metric(base, "switchboard_cache_saved_usd_total", **labels) == pytest.approx(float(paid))


def test_non_json_body_is_a_400_error_object(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            content=b'{"model": "gpt-4o-mini", "messages": [',
            options={"headers": {"Content-Type": "application/json"}},
        )

    assert caught.value.status_code == 400
    assert caught.value.type == "invalid_request_error"
    assert "JSON" in caught.value.message


def test_missing_messages_is_a_400_naming_the_param(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.client.post("/chat/completions", cast_to=ChatCompletion, body={"model": "gpt-4o"})

    assert caught.value.param == "messages"
    assert caught.value.type == "invalid_request_error"


def test_body_over_the_limit_is_a_413(stack: Stack) -> None:
    big: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * MAX_BODY}]
    with pytest.raises(openai.APIStatusError) as caught:
        stack.client.chat.completions.create(model="gpt-4o-mini", messages=big)

    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"


def test_unrouted_model_is_a_404_listing_routes_and_models(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        stack.client.chat.completions.create(model="claude-3-opus", messages=HELLO)

    message = caught.value.message
    assert "claude-3-opus" in message
    for name in ("cached", "locked", "chat", "gpt-4o-mini", "locked-model"):
        assert name in message
    assert caught.value.param == "model"


def test_upstream_auth_failure_is_a_502_naming_the_provider_without_the_key(
    stack: Stack,
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        stack.client.chat.completions.create(model="locked-model", messages=HELLO)

    error = caught.value
    assert error.status_code == 502
    assert "'locked'" in error.message
    assert error.code == "upstream_auth_failed"
    sent = stack.locked_mock.requests()[-1]["headers"]["authorization"]
    assert sent == f"Bearer {LOCKED_WRONG_KEY}"  # the key did go out, where it belongs
    headers = json.dumps(dict(error.response.headers))
    for secret in (LOCKED_WRONG_KEY, LOCKED_RIGHT_KEY, OPENAI_KEY):
        assert secret not in error.response.text
        assert secret not in headers
        assert secret not in stack.sidecar.log()
