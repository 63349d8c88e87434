"""The mock provider as a real subprocess, driven by the official openai SDK."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.mock_provider import MockProvider

pytestmark = pytest.mark.integration

HELLO: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},  # 14 chars: 4 + 4
    {"role": "user", "content": "hello"},  # 5 chars: 2 + 4
]
HELLO_PROMPT_TOKENS = 3 + 8 + 6


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProvider]:
    with MockProvider("unit-mock") as provider:
        yield provider


@pytest.fixture(scope="module")
def configured() -> Iterator[MockProvider]:
    with MockProvider("configured", api_key="sk-right", latency_ms=30, chunk_delay_ms=10) as p:
        yield p


@pytest.fixture
def client(mock: MockProvider) -> openai.OpenAI:
    mock.reset()
    return openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0, timeout=5)


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def test_chat_defaults_to_sixteen_tokens_and_echoes_model(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.id
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "tok " * 16
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == HELLO_PROMPT_TOKENS
    assert reply.usage.completion_tokens == 16
    assert reply.usage.total_tokens == HELLO_PROMPT_TOKENS + 16
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0


def test_chat_max_tokens_sets_completion_length(client: openai.OpenAI) -> None:
    short = client.chat.completions.create(model="m", messages=user("x"), max_tokens=3)
    newer = client.chat.completions.create(
        model="m",
        messages=user("x"),
        max_completion_tokens=5,
    )

    assert short.choices[0].message.content == "tok tok tok "
    assert short.usage is not None and short.usage.completion_tokens == 3
    assert newer.usage is not None and newer.usage.completion_tokens == 5


def test_chat_content_parts_count_their_text(client: openai.OpenAI) -> None:
    message: ChatCompletionMessageParam = {
        "role": "user",
        "content": [{"type": "text", "text": "abcd"}, {"type": "text", "text": "efgh"}],
    }
    reply = client.chat.completions.create(model="m", messages=[message])

    assert reply.usage is not None and reply.usage.prompt_tokens == 3 + 2 + 4


@pytest.mark.parametrize(
    ("marker", "answer"),
    [
        ("[[json]]", '{"ok": true}'),
        ("[[refuse]]", "I'm sorry, but I can't help with that."),
        ("[[empty]]", ""),
    ],
)
def test_chat_markers_in_last_user_message_choose_answer(
    client: openai.OpenAI, marker: str, answer: str
) -> None:
    reply = client.chat.completions.create(model="m", messages=user(f"please {marker}"))
    streamed = client.chat.completions.create(
        model="m",
        messages=user(marker),
        stream=True,
    )

    assert reply.choices[0].message.content == answer
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answer


def test_stream_sends_role_then_one_delta_per_token_then_finish(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="m", messages=user("x"), max_tokens=4, stream=True)
    )

    assert all(c.object == "chat.completion.chunk" and c.model == "m" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:5]] == ["tok "] * 4
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(chunks) == 6
    assert all(c.usage is None for c in chunks)


def test_stream_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=HELLO,
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == HELLO_PROMPT_TOKENS
    assert chunks[-1].usage.completion_tokens == 2
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_embeddings_are_deterministic_with_dimension_eight(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world!"])
    again = client.embeddings.create(model="e", input="hello", encoding_format="float")

    assert [len(d.embedding) for d in first.data] == [8, 8]
    assert [d.index for d in first.data] == [0, 1]
    assert first.data[0].embedding != first.data[1].embedding
    assert again.data[0].embedding == first.data[0].embedding
    assert first.model == "text-embedding-3-small"
    assert first.usage.prompt_tokens == first.usage.total_tokens == 2 + 2


def test_models_lists_models_owned_by_the_mock(client: openai.OpenAI) -> None:
    models = list(client.models.list())

    assert "gpt-4o-mini" in [m.id for m in models]
    assert {m.owned_by for m in models} == {"unit-mock"}


def test_api_key_is_required_when_configured(configured: MockProvider) -> None:
    wrong = openai.OpenAI(base_url=configured.url, api_key="sk-wrong", max_retries=0)
    right = openai.OpenAI(base_url=configured.url, api_key="sk-right", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()

    assert caught.value.code == "invalid_api_key"
    assert list(right.models.list())


def test_latency_and_chunk_delay_options_slow_every_answer(configured: MockProvider) -> None:
    client = openai.OpenAI(base_url=configured.url, api_key="sk-right", max_retries=0)

    started = time.monotonic()
    client.models.list()
    plain = time.monotonic() - started
    started = time.monotonic()
    list(client.chat.completions.create(model="m", messages=user("x"), max_tokens=3, stream=True))
    streamed = time.monotonic() - started

    assert plain >= 0.03
    assert streamed >= 0.03 + 4 * 0.01  # a gap before each delta and before the finish chunk


def test_unparsable_request_body_is_a_400(mock: MockProvider) -> None:
    request = urllib.request.Request(f"{mock.url}/chat/completions", data=b"{nope", method="POST")

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 400
    assert b"invalid_request_error" in caught.value.read()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("401", openai.AuthenticationError),
        ("400", openai.BadRequestError),
        ("reset", openai.APIConnectionError),
        ("cut_before_first_byte", openai.APIConnectionError),
        ("cut_after", openai.APIConnectionError),
    ],
)
def test_fault_fails_a_plain_request(
    client: openai.OpenAI, mock: MockProvider, fault: str, error: type[Exception]
) -> None:
    mock.set_faults({"fault": fault, "times": 1})

    with pytest.raises(error):
        client.chat.completions.create(model="m", messages=user("x"))
    assert client.chat.completions.create(model="m", messages=user("x"))


def test_fault_429_carries_retry_after_and_rate_limit_body(
    client: openai.OpenAI, mock: MockProvider
) -> None:
    mock.set_faults({"fault": "429", "retry_after": 2})

    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="e", input="x")

    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.type == "rate_limit_error"


def test_fault_hang_never_answers(client: openai.OpenAI, mock: MockProvider) -> None:
    mock.set_faults({"fault": "hang", "times": 1})

    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="m", messages=user("x"))


def test_fault_slow_delays_answer_and_chunks(client: openai.OpenAI, mock: MockProvider) -> None:
    mock.set_faults({"fault": "slow", "delay_ms": 20})

    started = time.monotonic()
    client.chat.completions.create(model="m", messages=user("x"), max_tokens=1)
    plain = time.monotonic() - started
    started = time.monotonic()
    list(client.chat.completions.create(model="m", messages=user("x"), max_tokens=3, stream=True))
    streamed = time.monotonic() - started

    assert plain >= 0.02
    assert streamed >= 0.02 + 3 * 0.02


def test_fault_cut_before_first_byte_breaks_stream_before_any_chunk(
    client: openai.OpenAI, mock: MockProvider
) -> None:
    mock.set_faults({"fault": "cut_before_first_byte"})
    received = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=user("x"), stream=True):
            received.append(chunk)

    assert received == []
    assert mock.stats()["by_model"]["m"] == {"requests": 1, "input_tokens": 0, "output_tokens": 0}


def test_fault_cut_after_sends_n_content_chunks_and_bills_them(
    client: openai.OpenAI, mock: MockProvider
) -> None:
    mock.set_faults({"fault": "cut_after", "after_chunks": 2})
    contents = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=HELLO, stream=True):
            contents.append(chunk.choices[0].delta.content)

    assert contents == ["", "tok ", "tok "]
    stats = mock.stats()
    assert stats["served"] == 0
    assert stats["by_model"]["m"] == {
        "requests": 1,
        "input_tokens": HELLO_PROMPT_TOKENS,
        "output_tokens": 2,
    }


def test_fault_bad_json_is_200_with_broken_body(client: openai.OpenAI, mock: MockProvider) -> None:
    mock.set_faults({"fault": "bad_json"})

    with pytest.raises(ValueError):
        client.chat.completions.create(model="m", messages=user("x"))
    raw = client.chat.completions.with_raw_response.create(model="m", messages=user("x"))
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")


def test_rules_match_model_glob_and_run_out(client: openai.OpenAI, mock: MockProvider) -> None:
    mock.set_faults({"fault": "500", "times": 2, "model": "gpt-4*"}, {"fault": "ok"})

    assert client.chat.completions.create(model="mistral-small", messages=user("x"))
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=user("x"))
    assert client.chat.completions.create(model="gpt-4o", messages=user("x"))


def test_stats_bill_only_answers_that_reached_the_client(
    client: openai.OpenAI, mock: MockProvider
) -> None:
    client.chat.completions.create(model="m", messages=HELLO, max_tokens=3)
    list(client.chat.completions.create(model="m", messages=HELLO, max_tokens=2, stream=True))
    client.embeddings.create(model="e", input="abcdefgh")
    mock.set_faults({"fault": "503"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=HELLO)

    assert mock.stats() == {
        "name": "unit-mock",
        "requests": 4,
        "served": 3,
        "by_model": {
            "m": {"requests": 3, "input_tokens": 2 * HELLO_PROMPT_TOKENS, "output_tokens": 5},
            "e": {"requests": 1, "input_tokens": 2, "output_tokens": 0},
        },
    }


def test_requests_log_keeps_lowercase_headers_parsed_body_and_client_port(
    client: openai.OpenAI, mock: MockProvider
) -> None:
    client.chat.completions.create(
        model="m",
        messages=user("x"),
        extra_headers={"X-Switchboard-Feature": "demo"},
    )
    client.models.list()

    chat, models = mock.requests()
    assert chat["path"] == "/v1/chat/completions"
    assert chat["headers"]["authorization"] == "Bearer sk-test"
    assert chat["headers"]["x-switchboard-feature"] == "demo"
    assert chat["body"]["messages"] == user("x")
    port = chat["client_port"]
    assert models == {"path": "/v1/models", "headers": models["headers"], "body": None} | {
        "client_port": port
    }
    assert isinstance(port, int) and port > 0  # one keep-alive connection for both


def test_reset_clears_faults_stats_and_requests(client: openai.OpenAI, mock: MockProvider) -> None:
    mock.set_faults({"fault": "500"})
    with pytest.raises(openai.InternalServerError):
        client.models.list()

    mock.reset()

    assert mock.stats() == {"name": "unit-mock", "requests": 0, "served": 0, "by_model": {}}
    assert mock.requests() == []
    assert list(client.models.list())


def test_invalid_fault_rule_is_rejected(mock: MockProvider) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        mock.set_faults({"fault": "explode"})

    assert caught.value.code == 400


def test_healthz_answers(mock: MockProvider) -> None:
    with urllib.request.urlopen(f"{mock.base}/healthz", timeout=5) as response:
        assert response.status == 200
