"""Spans, metrics and logs of the sidecar, read where they are made: the app runs in this process
(aiohttp TestServer) with the sidecar's tracing exporting to memory and a private Prometheus
registry; the providers are mock provider processes; the client is the official AsyncOpenAI SDK.

Covered: one SERVER span per request with one CLIENT child per upstream attempt (failover: two,
attempts 1 and 2), the GenAI and Switchboard attributes named in DESIGN.md, W3C trace
continuation, every metric name of DESIGN.md, and that provider keys and prompt text reach no
span, metric or log line (prompts reach spans only when the policy sets captureContent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from switchboard.pricing.catalog import catalog_price
from switchboard.sidecar.app import SidecarSettings, create_app
from switchboard.sidecar.deps import BACKLOG_SECONDS
from switchboard.sidecar.reload import ConfigSource
from switchboard.telemetry.metrics import Metrics
from switchboard.telemetry.tracing import Tracing
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import policy, write_manifests
from tests.support.wire import price, price_field

pytestmark = pytest.mark.integration

PRIMARY_KEY = "sk-tel-primary-5f1e2d3c4b5a6978"
BACKUP_KEY = "sk-tel-backup-0a9b8c7d6e5f4a3b"
# Keys a provider quotes back when it refuses them: one shaped like a key, and one without any
# key-like shape (only the sidecar's knowledge of the key can keep that one out).
ECHO_KEYS = {"echo-keylike": "sk-proj-EchoKey1234567890abcd", "echo-plain": "opensesame-Tel3metry"}
KEYS = (PRIMARY_KEY, BACKUP_KEY, *ECHO_KEYS.values())
ENV = {
    "TEL_PRIMARY_KEY": PRIMARY_KEY,
    "TEL_BACKUP_KEY": BACKUP_KEY,
    **{f"TEL_{name.upper().replace('-', '_')}_KEY": key for name, key in ECHO_KEYS.items()},
}
PROMPT = "Summarise order PROMPT-MARKER-7f3a9c for the customer."
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": PROMPT},
]
ANSWER = "tok " * 16  # what the mock says to a request without max_tokens
PRIMARY_PRICE = ("1", "2")
BACKUP_PRICE = ("3", "4")
FEATURE, TEAM = "checkout", "payments"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
SIDECAR_LOGGERS = ("switchboard", "aiohttp")
DESIGN_METRICS = (
    "switchboard_requests_total",
    "switchboard_tokens_total",
    "switchboard_cost_usd_total",
    "switchboard_request_duration_seconds",
    "switchboard_time_to_first_token_seconds",
    "switchboard_upstream_errors_total",
    "switchboard_failovers_total",
    "switchboard_cache_hits_total",
    "switchboard_cache_saved_usd_total",
    "switchboard_budget_spent_usd",
    "switchboard_budget_limit_usd",
)


@dataclass
class Upstreams:
    primary: MockProvider
    backup: MockProvider


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        MockProvider("primary", api_key=PRIMARY_KEY) as primary,
        MockProvider("backup", api_key=BACKUP_KEY) as backup,
    ):
        yield Upstreams(primary, backup)


@pytest.fixture
def fresh(upstreams: Upstreams) -> Upstreams:
    upstreams.primary.reset()
    upstreams.backup.reset()
    return upstreams


@dataclass
class EchoServer:
    """A provider that refuses every key, quoting it back in full in the error message."""

    server: TestServer
    refused: list[str]


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    refused: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        refused.append(token)
        error = {
            "message": f"Incorrect API key provided: {token}. Find your key in the dashboard.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        return web.json_response({"error": error}, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    server = TestServer(app)
    await server.start_server()
    try:
        yield EchoServer(server, refused)
    finally:
        await server.close()


def telemetry_policy(upstreams: Upstreams, echo: EchoServer, *, capture: bool) -> dict[str, Any]:
    return policy(
        providers=[
            {
                "name": "primary",
                "baseURL": upstreams.primary.url,
                "apiKey": {"env": "TEL_PRIMARY_KEY"},
            },
            {
                "name": "backup",
                "baseURL": upstreams.backup.url,
                "apiKey": {"env": "TEL_BACKUP_KEY"},
            },
            *(
                {
                    "name": name,
                    "baseURL": str(echo.server.make_url("/v1")),
                    "apiKey": {"env": f"TEL_{name.upper().replace('-', '_')}_KEY"},
                }
                for name in ECHO_KEYS
            ),
        ],
        models=[
            {"name": "p-mini", "provider": "primary", "price": price_field(*PRIMARY_PRICE)},
            {"name": "b-mini", "provider": "backup", "price": price_field(*BACKUP_PRICE)},
            *(
                {"name": f"{name}-model", "provider": name, "price": price_field("1", "1")}
                for name in ECHO_KEYS
            ),
            {
                "name": "p-embed",
                "provider": "primary",
                "type": "embedding",
                "price": price_field("0.02", "0"),
            },
        ],
        routes=[
            {
                "name": "failover",
                "match": {"tasks": ["failover"]},
                "targets": [{"model": "p-mini"}],
                "fallback": [{"model": "b-mini"}],
                "retry": {"attempts": 1},
            },
            *(
                {
                    "name": name,
                    "match": {"tasks": [name]},
                    "targets": [{"model": f"{name}-model"}],
                    "retry": {"attempts": 1},
                }
                for name in ECHO_KEYS
            ),
            {
                "name": "cached",
                "match": {"tasks": ["cache-me"]},
                "targets": [{"model": "p-mini"}],
                "cache": {"mode": "exact", "ttlSeconds": 600},
            },
            {"name": "main", "targets": [{"model": "p-mini"}]},
            {"name": "embed", "targets": [{"model": "p-embed"}]},
        ],
        telemetry={"captureContent": capture},
    )


def budget() -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": {"name": "checkout-budget", "namespace": "test"},
        "spec": {
            "feature": FEATURE,
            "team": TEAM,
            "limitUSD": 1000,
            "period": "monthly",
            "thresholds": [{"percent": 80, "action": "alert"}],
        },
    }


@dataclass
class InProcess:
    """The sidecar app served in this process, with what it reports into."""

    server: TestServer
    client: openai.AsyncOpenAI
    exporter: InMemorySpanExporter
    metrics: Metrics

    async def metrics_text(self) -> str:
        """GET /metrics, as Prometheus scrapes it."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.server.make_url("/metrics")) as response,
        ):
            assert response.status == 200
            return await response.text()

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    async def server_spans(self, count: int) -> list[ReadableSpan]:
        """The SERVER spans, once `count` of them have ended (a stream's span ends just after
        its last byte is written)."""
        for _ in range(200):
            found = [s for s in self.spans() if s.kind == SpanKind.SERVER]
            if len(found) >= count:
                assert len(found) == count, [s.name for s in found]
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} server spans, got {len(found)}")

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The CLIENT spans under `parent`, by attempt."""
        assert parent.context is not None
        found = [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]
        assert all(s.kind == SpanKind.CLIENT for s in found)
        return sorted(found, key=lambda s: attribute(s, "switchboard.attempt"))


def attribute(span: ReadableSpan, name: str) -> Any:
    assert span.attributes is not None
    assert name in span.attributes, (span.name, name, dict(span.attributes))
    return span.attributes[name]


Start = Callable[..., Awaitable[InProcess]]


@pytest.fixture
async def start(fresh: Upstreams, echo_server: EchoServer, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the app in this process: `await start(capture=False)`."""
    started: list[TestServer] = []

    async def _start(*, capture: bool = False) -> InProcess:
        path = write_manifests(
            tmp_path / f"policy-{len(started)}.yaml",
            telemetry_policy(fresh, echo_server, capture=capture),
            budget(),
        )
        exporter = InMemorySpanExporter()
        metrics = Metrics(CollectorRegistry())
        settings = SidecarSettings(
            config_path=path,
            feature=FEATURE,
            team=TEAM,
            namespace="test",
            reload_interval=0.05,
            outbox=tmp_path / "outbox.jsonl",
        )
        app = create_app(
            settings,
            config_source=ConfigSource(path, ENV, catalog_price),
            tracing=Tracing(SimpleSpanProcessor(exporter)),
            metrics=metrics,
        )
        server = TestServer(app)
        await server.start_server()
        started.append(server)
        client = openai.AsyncOpenAI(
            base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0
        )
        return InProcess(server, client, exporter, metrics)

    yield _start
    for server in started:
        await server.close()


def fresh_usage(sidecar: InProcess, model: str) -> tuple[int, int]:
    """(input, output) tokens this test's requests of `model` were billed, from the metrics."""
    registry = sidecar.metrics.registry
    labels = {"model": model}
    values = {
        kind: sum(
            s.value
            for family in registry.collect()
            if family.name == "switchboard_tokens"
            for s in family.samples
            if s.name == "switchboard_tokens_total"
            and s.labels.get("type") == kind
            and all(s.labels.get(k) == v for k, v in labels.items())
        )
        for kind in ("input", "output")
    }
    return int(values["input"]), int(values["output"])


# ---- spans ----------------------------------------------------------------------------------


async def test_chat_request_is_one_server_span_with_one_client_child(start: Start) -> None:
    sidecar = await start()
    raw = await sidecar.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    completion = raw.parse()
    assert completion.usage is not None
    usage = completion.usage

    (server,) = await sidecar.server_spans(1)
    (client,) = sidecar.children(server)
    assert server.parent is None
    assert server.context is not None and client.context is not None
    assert client.context.trace_id == server.context.trace_id
    expected_cost = price(usage.prompt_tokens, usage.completion_tokens, *PRIMARY_PRICE)
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == expected_cost

    assert attribute(server, "gen_ai.operation.name") == "chat"
    assert attribute(server, "gen_ai.provider.name") == "primary"
    assert attribute(server, "gen_ai.request.model") == "gpt-4o-mini"
    assert attribute(server, "gen_ai.response.model") == "p-mini"
    assert attribute(server, "gen_ai.usage.input_tokens") == usage.prompt_tokens
    assert attribute(server, "gen_ai.usage.output_tokens") == usage.completion_tokens
    assert attribute(server, "switchboard.cost_usd") == pytest.approx(float(expected_cost))
    assert attribute(server, "switchboard.feature") == FEATURE
    assert attribute(server, "switchboard.team") == TEAM
    assert attribute(server, "switchboard.route") == "main"
    assert attribute(server, "switchboard.cache") == "bypass"
    assert server.status.status_code != StatusCode.ERROR

    assert attribute(client, "gen_ai.operation.name") == "chat"
    assert attribute(client, "gen_ai.provider.name") == "primary"
    assert attribute(client, "gen_ai.request.model") == "p-mini"
    assert attribute(client, "gen_ai.response.model") == "p-mini"
    assert attribute(client, "gen_ai.usage.input_tokens") == usage.prompt_tokens
    assert attribute(client, "gen_ai.usage.output_tokens") == usage.completion_tokens
    assert attribute(client, "switchboard.attempt") == 1
    assert attribute(client, "switchboard.route") == "main"


async def test_streamed_chat_span_carries_usage_and_cost(start: Start) -> None:
    sidecar = await start()
    stream = await sidecar.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == ANSWER

    (server,) = await sidecar.server_spans(1)
    (client,) = sidecar.children(server)
    served = fresh_usage(sidecar, "p-mini")
    assert attribute(server, "gen_ai.usage.input_tokens") == served[0]
    assert attribute(server, "gen_ai.usage.output_tokens") == served[1] == 16
    assert attribute(server, "gen_ai.response.model") == "p-mini"
    assert attribute(server, "switchboard.cost_usd") == pytest.approx(
        float(price(*served, *PRIMARY_PRICE))
    )
    assert attribute(client, "switchboard.attempt") == 1
    assert attribute(client, "gen_ai.provider.name") == "primary"


async def test_spans_are_recorded_while_the_next_request_waits_or_soon_after(
    start: Start,
) -> None:
    sidecar = await start()
    await sidecar.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    await sidecar.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # The first request's spans were built while the second waited for its provider.
    assert len([s for s in sidecar.spans() if s.kind == SpanKind.SERVER]) >= 1
    # With no request after it, the last one's spans follow within BACKLOG_SECONDS.
    await asyncio.sleep(BACKLOG_SECONDS + 0.02)
    assert len([s for s in sidecar.spans() if s.kind == SpanKind.SERVER]) == 2


async def test_stream_broken_after_its_first_byte_marks_the_server_span(
    start: Start, fresh: Upstreams
) -> None:
    fresh.primary.set_faults({"fault": "cut_after", "after_chunks": 3})
    sidecar = await start()
    stream = await sidecar.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError, match="upstream stream broke"):
        async for _ in stream:
            pass

    (server,) = await sidecar.server_spans(1)
    assert server.status.status_code == StatusCode.ERROR
    assert server.status.description == "upstream closed the connection"
    assert attribute(server, "gen_ai.usage.output_tokens") == 3
    assert attribute(server, "switchboard.cost_usd") > 0


async def test_failover_gives_two_client_spans_attempts_one_and_two(
    start: Start, fresh: Upstreams
) -> None:
    fresh.primary.set_faults({"fault": "500", "times": 1})
    sidecar = await start()
    raw = await sidecar.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": "failover"}
    )
    assert raw.headers["x-switchboard-model"] == "b-mini"

    (server,) = await sidecar.server_spans(1)
    first, second = sidecar.children(server)
    assert attribute(first, "switchboard.attempt") == 1
    assert attribute(first, "gen_ai.provider.name") == "primary"
    assert attribute(first, "gen_ai.request.model") == "p-mini"
    assert attribute(first, "error.type") == "server"
    assert first.status.status_code == StatusCode.ERROR
    assert attribute(second, "switchboard.attempt") == 2
    assert attribute(second, "gen_ai.provider.name") == "backup"
    assert attribute(second, "gen_ai.request.model") == "b-mini"
    assert second.status.status_code != StatusCode.ERROR
    assert attribute(server, "gen_ai.provider.name") == "backup"
    assert attribute(server, "gen_ai.response.model") == "b-mini"
    assert attribute(server, "switchboard.route") == "failover"
    # Built after the answer, the spans keep the times of what they describe, in order.
    times = [(s.start_time or 0, s.end_time or 0) for s in (server, first, second)]
    (server_start, server_end), (first_start, first_end), (second_start, second_end) = times
    assert server_start < first_start < first_end <= second_start < second_end < server_end
    failovers = sidecar.metrics.registry.get_sample_value(
        "switchboard_failovers_total",
        {"feature": FEATURE, "route": "failover", "provider": "primary", "model": "p-mini"}
        | {"reason": "server"},
    )
    assert failovers == 1


async def test_embeddings_span_names_the_operation(start: Start) -> None:
    sidecar = await start()
    result = await sidecar.client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert result.usage.prompt_tokens == 1

    (server,) = await sidecar.server_spans(1)
    (client,) = sidecar.children(server)
    assert attribute(server, "gen_ai.operation.name") == "embeddings"
    assert attribute(server, "gen_ai.usage.input_tokens") == 1
    assert attribute(server, "switchboard.route") == "embed"
    assert attribute(client, "gen_ai.operation.name") == "embeddings"
    assert attribute(client, "gen_ai.request.model") == "p-embed"


async def test_cache_hit_span_says_hit_and_costs_nothing(start: Start) -> None:
    sidecar = await start()
    for _ in range(2):
        await sidecar.client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": "cache-me"}
        )
    miss, hit = sorted(await sidecar.server_spans(2), key=lambda s: s.start_time or 0)
    assert attribute(miss, "switchboard.cache") == "miss"
    assert attribute(hit, "switchboard.cache") == "hit"
    assert attribute(hit, "switchboard.cost_usd") == 0
    assert sidecar.children(hit) == []
    assert len(sidecar.children(miss)) == 1


async def test_traceparent_from_the_client_continues_the_trace(start: Start) -> None:
    sidecar = await start()
    await sidecar.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"},
    )
    (server,) = await sidecar.server_spans(1)
    (client,) = sidecar.children(server)
    assert server.context is not None and client.context is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == PARENT_SPAN_ID
    assert format(client.context.trace_id, "032x") == TRACE_ID


async def test_request_without_traceparent_starts_a_new_trace(start: Start) -> None:
    sidecar = await start()
    for _ in range(2):
        await sidecar.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, second = await sidecar.server_spans(2)
    assert first.parent is None and second.parent is None
    assert first.context is not None and second.context is not None
    assert first.context.trace_id != second.context.trace_id


# ---- metrics --------------------------------------------------------------------------------


async def test_every_designed_metric_is_exposed_after_traffic(
    start: Start, fresh: Upstreams
) -> None:
    sidecar = await start()
    client = sidecar.client
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    _ = [chunk async for chunk in stream]
    fresh.primary.set_faults({"fault": "503", "times": 1})
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": "failover"}
    )
    for _ in range(2):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": "cache-me"}
        )
    await client.embeddings.create(model="text-embedding-3-small", input="hi")
    await sidecar.server_spans(6)

    text = await sidecar.metrics_text()
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    names = set(samples)
    for name in DESIGN_METRICS:
        histogram = {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        assert name in names or histogram <= names, name
    tokens = {
        s.labels["type"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "switchboard_tokens_total"
    }
    assert {"input", "output"} <= tokens
    requests = samples["switchboard_requests_total"].labels
    assert set(requests) == {"feature", "team", "provider", "model", "route", "status"}
    assert requests["feature"] == FEATURE and requests["team"] == TEAM
    assert samples["switchboard_budget_limit_usd"].value == 1000
    assert samples["switchboard_time_to_first_token_seconds_count"].value == 1  # the one stream


# ---- secrets and content --------------------------------------------------------------------


def span_texts(spans: Sequence[ReadableSpan]) -> list[str]:
    """Everything a span exporter would ship: names, attributes, events, status messages."""
    out: list[str] = []
    for span in spans:
        out.append(span.name)
        out += [f"{k}=" + str(v) for k, v in (span.attributes or {}).items()]
        for event in span.events:
            out.append(event.name)
            out += [f"{k}=" + str(v) for k, v in (event.attributes or {}).items()]
        out.append(span.status.description or "")
    return out


async def _mixed_traffic(sidecar: InProcess, fresh: Upstreams) -> list[str]:
    """Requests that go well and badly; the texts of every answer the client got."""
    client = sidecar.client
    answers: list[str] = []
    ok = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    answers.append(ok.http_response.text + json.dumps(dict(ok.headers)))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    answers += [chunk.model_dump_json() async for chunk in stream]
    fresh.primary.set_faults({"fault": "429", "times": 1, "retry_after": 0})
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": "failover"}
    )
    for name in ECHO_KEYS:
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Switchboard-Task": name}
            )
        assert failed.value.status_code == 502
        assert f"provider {name!r} rejected the credentials" in failed.value.message
        response = failed.value.response
        answers.append(response.text + json.dumps(dict(response.headers)))
    return answers


async def test_keys_and_prompts_never_reach_spans_metrics_logs_or_answers(
    start: Start, fresh: Upstreams, echo_server: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sidecar = await start()
    answers = await _mixed_traffic(sidecar, fresh)
    await sidecar.server_spans(5)
    texts = span_texts(sidecar.spans())
    metrics = await sidecar.metrics_text()
    # The sidecar's side only: the SDK client in this process logs its own requests at DEBUG.
    records = [r for r in caplog.records if r.name.startswith(SIDECAR_LOGGERS)]
    assert records, "the sidecar logged nothing: the check would be empty"
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)

    # The keys did travel, in the Authorization header, and came back in error messages.
    assert fresh.primary.requests()[0]["headers"]["authorization"] == f"Bearer {PRIMARY_KEY}"
    assert sorted(echo_server.refused) == sorted(ECHO_KEYS.values())
    for key in KEYS:
        assert not [t for t in texts if key in t], key
        assert key not in metrics
        assert key not in logs
        assert not [a for a in answers if key in a], key
    for content in ("PROMPT-MARKER-7f3a9c", "You are terse", "tok tok"):
        assert not [t for t in texts if content in t], content
        assert content not in metrics
        assert content not in logs
    assert "gen_ai.input.messages" not in " ".join(texts)
    assert "gen_ai.output.messages" not in " ".join(texts)


async def test_captured_content_appears_only_when_the_policy_opts_in(start: Start) -> None:
    sidecar = await start(capture=True)
    await sidecar.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = await sidecar.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    _ = [chunk async for chunk in stream]

    for server in await sidecar.server_spans(2):
        prompt = json.loads(attribute(server, "gen_ai.input.messages"))
        assert prompt == [
            {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
            {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
        ]
        (output,) = json.loads(attribute(server, "gen_ai.output.messages"))
        assert output["role"] == "assistant"
        assert output["parts"] == [{"type": "text", "content": ANSWER}]
    texts = span_texts(sidecar.spans())
    assert not [t for t in texts for key in KEYS if key in t]
