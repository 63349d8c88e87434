"""Spans leave a real `switchboard sidecar` process over OTLP/HTTP: the receiver is an aiohttp
server on 127.0.0.1 in this process (in a thread of its own, so that it answers while a test
waits), decoding with the official protobuf classes; the client is the official openai SDK.

Covered: a chat request's SERVER span and its CLIENT child with the GenAI attributes, the cost
and the resource's service.name; headers from OTEL_EXPORTER_OTLP_HEADERS (not in the sidecar's
log); gzip; a 503 retried; a 400 not retried and logged once; no provider key in the bytes; and
that the sidecar's export loads neither `requests` nor protobuf.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.integration.conftest import MockFactory, SidecarFactory, client_for
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, policy
from tests.support.wire import price, price_field

pytestmark = pytest.mark.integration

PROVIDER_KEY = "sk-otlp-provider-9e8d7c6b5a"
PRICE = ("1", "2")
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()
WAIT = 15.0  # seconds a test waits for the receiver at most


@dataclass(frozen=True)
class Post:
    """One POST /v1/traces as received, and what the receiver answered."""

    headers: dict[str, str]  # names lower-case
    raw: bytes  # the body as sent
    body: bytes  # decompressed
    status: int

    def spans(self) -> list[Span]:
        request = ExportTraceServiceRequest.FromString(self.body)
        return [s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]


class Receiver:
    """An OTLP/HTTP trace receiver; it answers the scripted statuses first (with Retry-After: 0
    on 429 and 503), then 200."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.posts: list[Post] = []
        self._statuses = list(statuses)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.url = ""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the OTLP receiver did not start")

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/traces", self._traces)
        # auto_decompress off: the test sees the body as the exporter sent it.
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        ready.set()
        self._loop.run_forever()

    async def _traces(self, request: web.Request) -> web.Response:
        raw = await request.read()
        gzipped = request.headers.get("Content-Encoding") == "gzip"
        body = gzip.decompress(raw) if gzipped else raw
        ExportTraceServiceRequest.FromString(body)  # a 500 (and a failed test) if it is not one
        with self._changed:
            status = self._statuses.pop(0) if self._statuses else 200
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.posts.append(Post(headers, raw, body, status))
            self._changed.notify_all()
        if status != 200:
            return web.Response(status=status, headers={"Retry-After": "0"})
        return web.Response(body=EMPTY_RESPONSE, content_type="application/x-protobuf")

    def wait_for(self, done: Callable[[list[Post]], bool], timeout: float = WAIT) -> list[Post]:
        """The posts so far, once `done(posts)` holds; AssertionError after `timeout`."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.posts), timeout):
                raise AssertionError(f"receiver: condition not met, got {len(self.posts)} posts")
            return list(self.posts)

    def received(self) -> list[Post]:
        with self._changed:
            return list(self.posts)

    def spans(self, count: int) -> list[Span]:
        """The spans of the accepted posts, once there are `count` of them."""
        posts = self.wait_for(lambda ps: len(accepted_spans(ps)) >= count)
        spans = accepted_spans(posts)
        assert len(spans) == count, [s.name for s in spans]
        return spans

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def accepted_spans(posts: Sequence[Post]) -> list[Span]:
    return [s for p in posts if p.status == 200 for s in p.spans()]


def values(span: Span) -> dict[str, Any]:
    """A span's attributes as Python values."""
    return {a.key: scalar(a.value) for a in span.attributes}


def scalar(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


Receive = Callable[..., Receiver]


@pytest.fixture
def receive() -> Iterator[Receive]:
    """Start receivers: `receive(statuses=[503])`; they outlive the test's sidecars."""
    started: list[Receiver] = []

    def start(statuses: Sequence[int] = ()) -> Receiver:
        receiver = Receiver(statuses)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def provider(mocks: MockFactory) -> MockProvider:
    return mocks("primary", api_key=PROVIDER_KEY)


def start_sidecar(
    sidecars: SidecarFactory, provider: MockProvider, receiver: Receiver, **otel: str
) -> Sidecar:
    doc = policy(
        providers=[{"name": "primary", "baseURL": provider.url, "apiKey": {"env": "OTLP_KEY"}}],
        models=[{"name": "p-mini", "provider": "primary", "price": price_field(*PRICE)}],
        routes=[{"name": "main", "targets": [{"model": "p-mini"}]}],
    )
    env = {
        "OTLP_KEY": PROVIDER_KEY,
        "SWITCHBOARD_FEATURE": "checkout",
        "SWITCHBOARD_TEAM": "payments",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
        "OTEL_SERVICE_NAME": "checkout-sidecar",
        **otel,
    }
    return sidecars(doc, env=env)


def chat(sidecar: Sidecar) -> tuple[Any, str]:
    """One chat completion: (usage, the x-switchboard-cost-usd header)."""
    raw = client_for(sidecar).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    usage = raw.parse().usage
    assert usage is not None
    return usage, raw.headers["x-switchboard-cost-usd"]


def test_chat_request_exports_server_and_client_spans_with_genai_attributes(
    receive: Receive, sidecars: SidecarFactory, provider: MockProvider
) -> None:
    receiver = receive()
    sidecar = start_sidecar(sidecars, provider, receiver)
    usage, cost = chat(sidecar)
    assert Decimal(cost) == price(usage.prompt_tokens, usage.completion_tokens, *PRICE)

    spans = receiver.spans(2)
    (server,) = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    (client,) = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert client.trace_id == server.trace_id and len(server.trace_id) == 16
    assert client.parent_span_id == server.span_id
    assert server.parent_span_id == b""
    assert client.end_time_unix_nano <= server.end_time_unix_nano
    assert (server.flags, client.flags) == (0x100, 0x100)
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "primary",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "p-mini",
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "switchboard.feature": "checkout",
        "switchboard.team": "payments",
        "switchboard.route": "main",
    }
    got = values(server)
    assert {name: got.get(name) for name in expected} == expected
    assert values(server)["switchboard.cost_usd"] == pytest.approx(float(cost))
    assert values(client)["gen_ai.request.model"] == "p-mini"
    assert values(client)["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert values(client)["switchboard.attempt"] == 1

    posts = receiver.received()
    request = ExportTraceServiceRequest.FromString(posts[0].body)
    resource = {a.key: scalar(a.value) for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "checkout-sidecar"
    assert request.resource_spans[0].scope_spans[0].scope.name == "switchboard.sidecar"
    assert {p.headers["content-type"] for p in posts} == {"application/x-protobuf"}
    # The key went upstream, in the Authorization header, and nowhere into the spans.
    assert provider.requests()[0]["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [p for p in posts if PROVIDER_KEY.encode() in p.raw]


def test_headers_from_the_environment_arrive_and_stay_out_of_the_log(
    receive: Receive, sidecars: SidecarFactory, provider: MockProvider
) -> None:
    receiver = receive()
    headers = "authorization=Bearer%20otlp-secret-7c1d,X-Scope-OrgID=tenant-42,otlp-secret-b4d"
    sidecar = start_sidecar(
        sidecars,
        provider,
        receiver,
        OTEL_EXPORTER_OTLP_HEADERS="x-generic=not-sent",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS=headers,
        SWITCHBOARD_LOG_LEVEL="DEBUG",
    )
    chat(sidecar)
    receiver.spans(2)
    for post in receiver.received():
        assert post.headers["authorization"] == "Bearer otlp-secret-7c1d"
        assert post.headers["x-scope-orgid"] == "tenant-42"
        assert "x-generic" not in post.headers
    log = sidecar.log()
    assert "OTLP headers: entry 3 is not a valid name=value pair" in log  # the log was read
    assert "otlp-secret" not in log
    assert "tenant-42" not in log


def test_gzip_compression_sends_a_gzip_body(
    receive: Receive, sidecars: SidecarFactory, provider: MockProvider
) -> None:
    receiver = receive()
    sidecar = start_sidecar(
        sidecars, provider, receiver, OTEL_EXPORTER_OTLP_TRACES_COMPRESSION="gzip"
    )
    chat(sidecar)
    assert len(receiver.spans(2)) == 2
    for post in receiver.received():
        assert post.headers["content-encoding"] == "gzip"
        assert post.raw[:2] == b"\x1f\x8b"


def test_a_503_gets_the_batch_retried(
    receive: Receive, sidecars: SidecarFactory, provider: MockProvider
) -> None:
    receiver = receive(statuses=[503])
    sidecar = start_sidecar(sidecars, provider, receiver)
    chat(sidecar)
    spans = receiver.spans(2)
    posts = receiver.received()
    assert posts[0].status == 503
    assert posts[1].status == 200
    assert posts[1].raw == posts[0].raw  # the same batch, again
    assert len({s.span_id for s in spans}) == 2
    assert "HTTP 503" not in sidecar.log()  # retried with success: nothing to warn about


def test_a_400_is_not_retried_and_is_logged_once(
    receive: Receive, sidecars: SidecarFactory, provider: MockProvider
) -> None:
    receiver = receive(statuses=[400, 400])
    sidecar = start_sidecar(sidecars, provider, receiver)
    for _ in range(4):  # until a batch is accepted after two refused ones
        before = len(receiver.received())
        chat(sidecar)
        posts = receiver.wait_for(lambda ps, n=before: len(ps) > n)
        if len(posts) >= 3:
            break
    statuses = [p.status for p in posts]
    assert statuses[:2] == [400, 400] and 200 in statuses
    # Export is sequential: a retry of a refused batch would come before the next batch.
    assert len({p.raw for p in posts}) == len(posts)
    assert sidecar.log().count("refused with HTTP 400") == 1


def test_exporting_loads_neither_requests_nor_protobuf() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import switchboard.cli, switchboard.sidecar.app, switchboard.telemetry.otlp_encoding as otlp
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from switchboard.telemetry.spans import tracing_from_env

        tracing = tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
        memory = InMemorySpanExporter()
        local = TracerProvider()
        local.add_span_processor(SimpleSpanProcessor(memory))
        local.get_tracer("t").start_span("s", attributes={"a": [1, 2]}).end()
        body = otlp.encode_export_request(memory.get_finished_spans())
        loaded = [
            m for m in sys.modules
            if m.split(".")[0] in ("requests", "urllib3", "google")
            or m.startswith(("opentelemetry.proto", "opentelemetry.exporter"))
        ]
        kind = type(tracing).__name__
        print(json.dumps({"tracing": kind, "bytes": len(body), "loaded": loaded}))
        tracing.shutdown()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tracing"] == "Tracing"
    assert report["bytes"] > 0
    assert report["loaded"] == []
