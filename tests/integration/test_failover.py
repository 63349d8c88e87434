"""Failover, retries, circuit breaker, strategies and residency, end to end: real mock provider
and sidecar processes, the official openai SDK as the client (raw HTTP for stream internals).

One sidecar serves every case. Each case has its own route (picked by `X-Switchboard-Task`),
its own feature and its own models (a failover case: `p-<case>` on the primary mock, falling
back to `b-<case>` on the backup), so breaker state, fault rules and metric labels never mix
between cases.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.conftest import client_for
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, policy, write_manifests
from tests.support.wire import debug_targets, metric, post_json, price, price_field, wait_until

pytestmark = pytest.mark.integration

PRIMARY_PRICE = ("1", "2")
BACKUP_PRICE = ("3", "4")
CHEAP_PRICE = ("0.1", "0.4")
DEAR_PRICE = ("5", "15")
HANG_TIMEOUT = 0.4
BREAKER_THRESHOLD = 3
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
FAST = {"attempts": 1, "backoffMs": 10}

# case -> (primary provider, retry); every case gets p-<case> with fallback b-<case>
FAILOVER_CASES: dict[str, tuple[str, Mapping[str, int]]] = {
    "rl": ("primary", {"attempts": 2, "backoffMs": 10}),
    "e500": ("primary", FAST),
    "e503": ("primary", FAST),
    "refused": ("closed", {"attempts": 2, "backoffMs": 10}),
    "hang": ("primary-short", FAST),
    "hangstream": ("primary-short", FAST),
    "cutb": ("primary", FAST),
    "cuta": ("primary", FAST),
    "badjson": ("primary", FAST),
    "badjsonstream": ("primary", FAST),
    "badlate": ("primary", FAST),
    "retry": ("primary", {"attempts": 2, "backoffMs": 10}),
    "breaker": ("primary", FAST),
    "gone": ("primary", FAST),
}


@dataclass
class Stack:
    primary: MockProvider
    backup: MockProvider
    slow: MockProvider
    eu: MockProvider
    sidecar: Sidecar
    client: openai.OpenAI

    def ask(
        self, case: str, *, region: str | None = None, **kwargs: Any
    ) -> tuple[Mapping[str, str], ChatCompletion]:
        """A chat request on the route of `case`: the response headers and the answer."""
        raw = self.client.chat.completions.with_raw_response.create(
            model="any",
            messages=kwargs.pop("messages", HELLO),
            extra_headers=case_headers(case, region),
            **kwargs,
        )
        return raw.headers, raw.parse()

    def metric(self, sample: str, **labels: str) -> float:
        return metric(self.sidecar.base, sample, **labels)


def case_headers(case: str, region: str | None = None) -> dict[str, str]:
    headers = {"X-Switchboard-Task": case, "X-Switchboard-Feature": case}
    if region is not None:
        headers["X-Switchboard-Region"] = region
    return headers


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def model(name: str, provider: str, prices: tuple[str, str]) -> dict[str, Any]:
    return {"name": name, "provider": provider, "price": price_field(*prices)}


def route(
    name: str,
    targets: Sequence[Mapping[str, Any]],
    fallback: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"tasks": [name]},
        "targets": list(targets),
        "fallback": [{"model": m} for m in fallback],
        "retry": FAST,
        **extra,
    }


def build_policy(
    primary: MockProvider, backup: MockProvider, slow: MockProvider, eu: MockProvider
) -> dict[str, Any]:
    providers: list[dict[str, Any]] = [
        {"name": "primary", "baseURL": primary.url, "region": "us", "timeoutSeconds": 5},
        {"name": "backup", "baseURL": backup.url, "region": "us", "timeoutSeconds": 5},
        {"name": "primary-short", "baseURL": primary.url, "timeoutSeconds": HANG_TIMEOUT},
        {"name": "closed", "baseURL": f"http://127.0.0.1:{closed_port()}/v1"},
        {"name": "slow", "baseURL": slow.url},
        {"name": "eu", "baseURL": eu.url, "region": "eu", "timeoutSeconds": 5},
    ]
    models, routes = [], []
    for case, (provider, retry) in FAILOVER_CASES.items():
        models += [
            model(f"p-{case}", provider, PRIMARY_PRICE),
            model(f"b-{case}", "backup", BACKUP_PRICE),
        ]
        routes.append(route(case, [{"model": f"p-{case}"}], [f"b-{case}"], retry=dict(retry)))
    models += [
        model("p-allrl-1", "primary", PRIMARY_PRICE),
        model("p-allrl-2", "primary", PRIMARY_PRICE),
        model("w-one", "primary", PRIMARY_PRICE),
        model("w-zero", "primary", PRIMARY_PRICE),
        model("c-dear", "primary", DEAR_PRICE),
        model("c-cheap", "primary", CHEAP_PRICE),
        model("f-slow", "slow", PRIMARY_PRICE),
        model("f-fast", "backup", PRIMARY_PRICE),
        model("k-cheap", "primary", CHEAP_PRICE),
        model("k-dear", "backup", DEAR_PRICE),
        model("r-eu", "eu", PRIMARY_PRICE),
        model("r-us", "backup", PRIMARY_PRICE),
    ]
    routes += [
        route("allrl", [{"model": "p-allrl-1"}], ["p-allrl-2"]),
        route(
            "weighted",
            [{"model": "w-zero", "weight": 0}, {"model": "w-one", "weight": 3}],
            strategy="weighted",
        ),
        route("cheapest", [{"model": "c-dear"}, {"model": "c-cheap"}], strategy="cheapest"),
        route("fastest", [{"model": "f-slow"}, {"model": "f-fast"}], strategy="fastest"),
        route("cascade", [{"model": "k-dear"}, {"model": "k-cheap"}], strategy="cascade"),
        route("residency", [{"model": "r-eu"}], ["r-us"]),
    ]
    return policy(
        providers,
        models,
        routes,
        dataResidency={"eu": ["eu"]},
        circuitBreaker={"failureThreshold": BREAKER_THRESHOLD, "cooldownSeconds": 60},
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        MockProvider("primary") as primary,
        MockProvider("backup") as backup,
        MockProvider("slow", latency_ms=60) as slow,
        MockProvider("eu") as eu,
    ):
        doc = build_policy(primary, backup, slow, eu)
        config = write_manifests(tmp_path_factory.mktemp("failover") / "policy.yaml", doc)
        with Sidecar(config) as sidecar:
            yield Stack(primary, backup, slow, eu, sidecar, client_for(sidecar, timeout=10))


@pytest.fixture
def stack(running: Stack) -> Stack:
    """The running stack, with no fault rules left over from an earlier test."""
    for mock in (running.primary, running.backup, running.slow, running.eu):
        mock.set_faults()
    return running


def stream_until_error(stack: Stack, case: str, error: str) -> tuple[str, Mapping[str, str]]:
    """Stream a chat of `case` that must end in an API error matching `error`: the text that
    arrived before it, and the response headers."""
    stream = stack.client.chat.completions.create(
        model="any", messages=HELLO, stream=True, extra_headers=case_headers(case)
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match=error):
        for chunk in stream:
            received += [c.delta.content or "" for c in chunk.choices]
    return "".join(received), stream.response.headers


def requests_for(mock: MockProvider, model_name: str) -> int:
    """How many requests `mock` received for `model_name`."""
    stats = mock.stats()["by_model"].get(model_name)
    return 0 if stats is None else int(stats["requests"])


def reported_cost(usage: Any, prices: tuple[str, str]) -> Decimal:
    assert usage is not None
    return price(usage.prompt_tokens, usage.completion_tokens, *prices)


def assert_served_by_backup(case: str, headers: Mapping[str, str], reply: ChatCompletion) -> None:
    assert headers["x-switchboard-provider"] == "backup"
    assert headers["x-switchboard-model"] == f"b-{case}"
    assert headers["x-switchboard-route"] == case
    assert reply.choices[0].message.content == "tok " * 16
    assert Decimal(headers["x-switchboard-cost-usd"]) == reported_cost(reply.usage, BACKUP_PRICE)


# ---- the failover matrix --------------------------------------------------------------------


def test_429_moves_on_at_once_and_the_primary_rests(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "429", "model": "p-rl", "retry_after": 30})
    begun = time.monotonic()
    headers, reply = stack.ask("rl")
    took = time.monotonic() - begun

    assert took < 1.0  # Retry-After is 30 s: the request did not wait for it
    assert_served_by_backup("rl", headers, reply)
    assert headers["x-switchboard-attempts"] == "2"
    assert requests_for(stack.primary, "p-rl") == 1
    assert stack.metric("switchboard_upstream_errors_total", model="p-rl", kind="rate_limited") == 1
    assert stack.metric("switchboard_failovers_total", model="p-rl", reason="rate_limited") == 1

    headers, reply = stack.ask("rl")

    assert_served_by_backup("rl", headers, reply)
    assert headers["x-switchboard-attempts"] == "1"
    assert requests_for(stack.primary, "p-rl") == 1
    target = debug_targets(stack.sidecar.base)["p-rl"]
    assert target["state"] == "resting"
    assert 25 < target["restingForSeconds"] <= 30
    assert stack.metric("switchboard_circuit_state", model="p-rl") == 3
    assert stack.metric("switchboard_failovers_total", model="p-rl") == 1


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_error_fails_over_to_the_fallback(stack: Stack, status: str) -> None:
    case = f"e{status}"
    stack.primary.set_faults({"fault": status, "model": f"p-{case}"})
    headers, reply = stack.ask(case)

    assert_served_by_backup(case, headers, reply)
    assert headers["x-switchboard-attempts"] == "2"
    assert stack.metric("switchboard_upstream_errors_total", model=f"p-{case}", kind="server") == 1
    assert stack.metric("switchboard_failovers_total", model=f"p-{case}", reason="server") == 1
    assert stack.metric("switchboard_cost_usd_total", model=f"p-{case}") == 0


def test_connection_refused_is_retried_then_fails_over(stack: Stack) -> None:
    headers, reply = stack.ask("refused")

    assert_served_by_backup("refused", headers, reply)
    assert headers["x-switchboard-attempts"] == "3"  # two tries at the closed port
    assert stack.metric("switchboard_upstream_errors_total", model="p-refused", kind="connect") == 2
    assert stack.metric("switchboard_failovers_total", model="p-refused", reason="connect") == 1


def test_hang_past_the_timeout_fails_over(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "hang", "model": "p-hang*"})
    begun = time.monotonic()
    headers, reply = stack.ask("hang")
    took = time.monotonic() - begun

    assert HANG_TIMEOUT <= took < HANG_TIMEOUT + 1.0
    assert_served_by_backup("hang", headers, reply)
    assert headers["x-switchboard-attempts"] == "2"
    assert stack.metric("switchboard_upstream_errors_total", model="p-hang", kind="timeout") == 1
    assert stack.metric("switchboard_failovers_total", model="p-hang", reason="timeout") == 1


def test_stream_without_a_first_byte_in_time_fails_over(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "hang", "model": "p-hang*"})
    stream = stack.client.chat.completions.create(
        model="any", messages=HELLO, stream=True, extra_headers=case_headers("hangstream")
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "tok " * 16
    assert stream.response.headers["x-switchboard-model"] == "b-hangstream"
    assert stream.response.headers["x-switchboard-attempts"] == "2"
    assert (
        stack.metric("switchboard_upstream_errors_total", model="p-hangstream", kind="timeout") == 1
    )


def test_stream_cut_before_the_first_byte_fails_over(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "cut_before_first_byte", "model": "p-cutb"})
    raw = stack.client.chat.completions.with_raw_response.create(
        model="any", messages=HELLO, stream=True, extra_headers=case_headers("cutb")
    )
    chunks = list(raw.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok " * 16
    assert raw.headers["x-switchboard-provider"] == "backup"
    assert raw.headers["x-switchboard-attempts"] == "2"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stack.metric("switchboard_upstream_errors_total", model="p-cutb", kind="connect") == 1
    assert stack.metric("switchboard_failovers_total", model="p-cutb", reason="connect") == 1
    assert stack.metric("switchboard_cost_usd_total", model="p-cutb") == 0


def test_stream_cut_after_the_first_byte_ends_in_an_error_and_is_priced(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "cut_after", "model": "p-cuta", "after_chunks": 3})
    text, _ = stream_until_error(stack, "cuta", "upstream stream broke")
    assert text == "tok " * 3

    body = {"model": "any", "messages": HELLO, "stream": True}
    reply = post_json(stack.sidecar.base, "/v1/chat/completions", body, case_headers("cuta"))

    assert reply.status == 200
    assert reply.headers["x-switchboard-model"] == "p-cuta"
    assert "[DONE]" not in reply.sse_data()
    last_two = [line for line in reply.lines() if line][-2:]
    assert last_two[0].startswith("data: ") and '"error"' in last_two[0]
    assert last_two[1].startswith(": x-switchboard-cost-usd=")
    billed = stack.primary.stats()["by_model"]["p-cuta"]
    assert billed["output_tokens"] == 6  # three tokens reached the client, twice
    delivered = price(billed["input_tokens"] // 2, 3, *PRIMARY_PRICE)
    assert reply.cost_comment() == delivered
    cost = stack.metric("switchboard_cost_usd_total", model="p-cuta")
    assert cost == pytest.approx(2 * float(delivered))
    assert stack.metric("switchboard_upstream_errors_total", model="p-cuta", kind="stream_cut") == 2
    assert stack.metric("switchboard_failovers_total", model="p-cuta") == 0
    assert requests_for(stack.backup, "b-cuta") == 0


def test_client_disconnect_cancels_the_upstream_stream(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "slow", "model": "p-gone", "delay_ms": 40})
    stream = stack.client.chat.completions.create(
        model="any", messages=HELLO, stream=True, extra_headers=case_headers("gone")
    )
    first = next(iter(stream))
    stream.close()

    assert first.choices[0].delta.role == "assistant"
    wait_until(lambda: stack.primary.stats()["by_model"]["p-gone"]["input_tokens"] > 0)
    assert stack.primary.stats()["by_model"]["p-gone"]["output_tokens"] < 16
    assert requests_for(stack.backup, "b-gone") == 0
    wait_until(lambda: stack.metric("switchboard_requests_total", model="p-gone") == 1)
    assert stack.metric("switchboard_requests_total", model="p-gone", status="499") == 1
    assert stack.metric("switchboard_cost_usd_total", model="p-gone") > 0
    assert stack.metric("switchboard_upstream_errors_total", model="p-gone") == 0


def test_invalid_json_from_upstream_fails_over(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "bad_json", "model": "p-badjson"})
    headers, reply = stack.ask("badjson")

    assert_served_by_backup("badjson", headers, reply)
    assert headers["x-switchboard-attempts"] == "2"
    kind = "bad_response"
    assert stack.metric("switchboard_upstream_errors_total", model="p-badjson", kind=kind) == 1
    assert stack.metric("switchboard_failovers_total", model="p-badjson", reason=kind) == 1


def test_invalid_json_stream_from_upstream_fails_over(stack: Stack) -> None:
    # The role chunk, then broken JSON: no token reached the client yet, so it fails over.
    rule = {"fault": "bad_json", "model": "p-badjsonstream", "after_chunks": 0}
    stack.primary.set_faults(rule)
    stream = stack.client.chat.completions.create(
        model="any", messages=HELLO, stream=True, extra_headers=case_headers("badjsonstream")
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "tok " * 16
    assert stream.response.headers["x-switchboard-model"] == "b-badjsonstream"
    assert stack.metric("switchboard_failovers_total", model="p-badjsonstream") == 1


def test_invalid_json_after_the_first_token_ends_the_stream_in_an_error(stack: Stack) -> None:
    # One burst: role chunk, two tokens, broken JSON. Everything up to the first token is checked
    # and sent at once; what follows in the same read is relayed as it is parsed, so the broken
    # event ends a stream that has already begun, with an explicit error and the delivered cost.
    rule = {"fault": "bad_json", "model": "p-badlate", "after_chunks": 2}
    stack.primary.set_faults(rule)
    text, headers = stream_until_error(stack, "badlate", "invalid stream event")

    assert text == "tok " * 2
    assert headers["x-switchboard-model"] == "p-badlate"
    assert requests_for(stack.backup, "b-badlate") == 0
    kind = "stream_cut"
    assert stack.metric("switchboard_upstream_errors_total", model="p-badlate", kind=kind) == 1
    assert stack.metric("switchboard_failovers_total", model="p-badlate") == 0
    assert stack.metric("switchboard_cost_usd_total", model="p-badlate") > 0


# ---- retries, breaker, exhaustion ----------------------------------------------------------


def test_500_once_is_retried_on_the_same_target(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "500", "model": "p-retry", "times": 1})
    headers, reply = stack.ask("retry")

    assert headers["x-switchboard-model"] == "p-retry"
    assert headers["x-switchboard-attempts"] == "2"
    assert Decimal(headers["x-switchboard-cost-usd"]) == reported_cost(reply.usage, PRIMARY_PRICE)
    assert requests_for(stack.primary, "p-retry") == 2
    assert requests_for(stack.backup, "b-retry") == 0
    assert stack.metric("switchboard_upstream_errors_total", model="p-retry", kind="server") == 1
    assert stack.metric("switchboard_failovers_total", model="p-retry") == 0


def test_breaker_opens_after_the_threshold_and_skips_the_target(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "500", "model": "p-breaker"})
    for _ in range(BREAKER_THRESHOLD):
        headers, reply = stack.ask("breaker")
        assert_served_by_backup("breaker", headers, reply)
        assert headers["x-switchboard-attempts"] == "2"

    target = debug_targets(stack.sidecar.base)["p-breaker"]
    assert target["state"] == "open"
    assert target["consecutiveFailures"] == BREAKER_THRESHOLD
    assert stack.metric("switchboard_circuit_state", model="p-breaker") == 2
    assert stack.metric("switchboard_circuit_state", model="b-breaker") == 0

    headers, reply = stack.ask("breaker")

    assert_served_by_backup("breaker", headers, reply)
    assert headers["x-switchboard-attempts"] == "1"
    assert requests_for(stack.primary, "p-breaker") == BREAKER_THRESHOLD


def test_every_target_rate_limited_is_a_429_with_retry_after(stack: Stack) -> None:
    stack.primary.set_faults({"fault": "429", "model": "p-allrl-*", "retry_after": 7})
    for _ in range(2):  # first: both answer 429; then: both rest
        with pytest.raises(openai.RateLimitError) as caught:
            stack.ask("allrl")
        assert caught.value.status_code == 429
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 7
    assert requests_for(stack.primary, "p-allrl-1") == 1
    assert requests_for(stack.primary, "p-allrl-2") == 1
    assert stack.metric("switchboard_failovers_total", model="p-allrl-1") == 1


# ---- strategies ----------------------------------------------------------------------------


def test_weighted_never_picks_a_weight_zero_target(stack: Stack) -> None:
    served = {stack.ask("weighted")[0]["x-switchboard-model"] for _ in range(12)}

    assert served == {"w-one"}
    assert requests_for(stack.primary, "w-zero") == 0


def test_cheapest_picks_the_cheaper_model(stack: Stack) -> None:
    headers, reply = stack.ask("cheapest")

    assert headers["x-switchboard-model"] == "c-cheap"
    assert Decimal(headers["x-switchboard-cost-usd"]) == reported_cost(reply.usage, CHEAP_PRICE)
    assert requests_for(stack.primary, "c-dear") == 0


def test_fastest_prefers_the_lower_latency_target(stack: Stack) -> None:
    served = [stack.ask("fastest")[0]["x-switchboard-model"] for _ in range(5)]

    assert sorted(served[:2]) == ["f-fast", "f-slow"]  # each measured once
    assert served[2:] == ["f-fast"] * 3
    latency = {m: t["latencyMs"] for m, t in debug_targets(stack.sidecar.base).items()}
    assert latency["f-slow"] > latency["f-fast"]


def test_cascade_keeps_a_good_cheap_answer(stack: Stack) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "[[json]] go"}]
    headers, reply = stack.ask(
        "cascade", messages=messages, response_format={"type": "json_object"}
    )

    assert headers["x-switchboard-model"] == "k-cheap"
    assert headers["x-switchboard-attempts"] == "1"
    assert reply.choices[0].message.content == '{"ok": true}'
    assert Decimal(headers["x-switchboard-cost-usd"]) == reported_cost(reply.usage, CHEAP_PRICE)


@pytest.mark.parametrize(
    ("content", "options"),
    [("[[refuse]] help me", {}), ("not json", {"response_format": {"type": "json_object"}})],
    ids=["refusal", "invalid-json"],
)
def test_cascade_escalates_and_pays_for_every_attempt(
    stack: Stack, content: str, options: dict[str, Any]
) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": content}]
    cheap_before = requests_for(stack.primary, "k-cheap")
    headers, reply = stack.ask("cascade", messages=messages, **options)

    assert headers["x-switchboard-model"] == "k-dear"
    assert headers["x-switchboard-attempts"] == "2"
    assert requests_for(stack.primary, "k-cheap") == cheap_before + 1
    # the mock bills both models the same usage for the same question
    both = reported_cost(reply.usage, CHEAP_PRICE) + reported_cost(reply.usage, DEAR_PRICE)
    assert Decimal(headers["x-switchboard-cost-usd"]) == both


def test_streamed_cascade_escalates_and_prices_both_attempts(stack: Stack) -> None:
    escalations = stack.metric("switchboard_failovers_total", model="k-cheap", reason="quality")
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": "[[refuse]] stream it"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = post_json(stack.sidecar.base, "/v1/chat/completions", body, case_headers("cascade"))

    assert reply.status == 200
    assert reply.headers["x-switchboard-model"] == "k-dear"
    assert reply.sse_data()[-1] == "[DONE]"
    usage = reply.sse_chunks()[-1]["usage"]
    tokens = (usage["prompt_tokens"], usage["completion_tokens"])
    assert reply.cost_comment() == price(*tokens, *CHEAP_PRICE) + price(*tokens, *DEAR_PRICE)
    after = stack.metric("switchboard_failovers_total", model="k-cheap", reason="quality")
    assert after == escalations + 1


# ---- residency -----------------------------------------------------------------------------


def test_eu_request_is_served_in_the_eu(stack: Stack) -> None:
    headers, _ = stack.ask("residency", region="eu")

    assert headers["x-switchboard-provider"] == "eu"


def test_eu_request_never_leaks_to_the_us_when_the_eu_fails(stack: Stack) -> None:
    stack.eu.set_faults({"fault": "500"})
    us_before = stack.backup.stats()["requests"]
    with pytest.raises(openai.APIStatusError) as caught:
        stack.ask("residency", region="eu")

    assert caught.value.status_code == 502
    assert "r-eu" in caught.value.message
    assert "r-us" not in caught.value.message
    assert stack.backup.stats()["requests"] == us_before
    headers, _ = stack.ask("residency")  # without a region, the us fallback may serve
    assert headers["x-switchboard-provider"] == "backup"
