"""A request's spans are built from the notes its `Call` took, after the answer: the times the
pipeline noted, the attempts in order, events, the answer's usage, and errors as the SDK's
`start_as_current_span` would record them."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from switchboard.config.load import config_from_documents
from switchboard.config.runtime import RuntimeConfig, compile_runtime
from switchboard.pricing.cost import Usage
from switchboard.providers import openai_compat as oai
from switchboard.routing.match import RequestFacts
from switchboard.sidecar.call import AttemptNote, Call
from switchboard.sidecar.request_spans import record_spans
from switchboard.telemetry.tracing import Tracing

T0 = 1_760_000_000_000_000_000  # ns since the epoch


def runtime(*, capture: bool = False) -> RuntimeConfig:
    manifest = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "test", "namespace": "shop"},
        "spec": {
            "providers": [{"name": "openai", "baseURL": "https://openai.example/v1"}],
            "models": [
                {"name": m, "provider": "openai", "price": {"inputPerMTok": 1, "outputPerMTok": 2}}
                for m in ("gpt-4o", "gpt-4o-mini")
            ],
            "routes": [{"name": "main", "targets": [{"model": "gpt-4o"}]}],
            "telemetry": {"captureContent": capture},
        },
    }
    config = config_from_documents([("test", manifest)])
    return compile_runtime(config, env={}, price_lookup=lambda model, provider: None)


def call_of(rt: RuntimeConfig) -> Call:
    facts = RequestFacts("checkout", "payments", None, "gpt-4o", None, None, 10, 16)
    body: dict[str, object] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    return Call("chat", body, rt, facts, rt.routes[0], False, 0.0, T0)


def recorded(call: Call, end_ns: int = T0 + 900) -> tuple[ReadableSpan, list[ReadableSpan]]:
    memory = InMemorySpanExporter()
    record_spans(call, Tracing(SimpleSpanProcessor(memory)), end_ns)
    spans = list(memory.get_finished_spans())
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    children = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert server.context is not None
    assert all(
        c.parent is not None and c.parent.span_id == server.context.span_id for c in children
    )
    return server, children


def test_a_failover_gives_the_noted_times_attempts_and_answer() -> None:
    rt = runtime()
    call = call_of(rt)
    model, backup = rt.models["gpt-4o"], rt.models["gpt-4o-mini"]
    error = oai.UpstreamError("server", 500, True, None, "500 from upstream")
    call.tried += [
        AttemptNote(model, 1, T0 + 100, T0 + 200, error=error),
        AttemptNote(backup, 2, T0 + 300, T0 + 800, usage=Usage(10, 4), response_model="m-1"),
    ]
    call.events.append(("cascade.escalate", {"model": "gpt-4o", "reason": "empty"}, T0 + 250))
    call.answered_by, call.usage, call.response_model = "openai", Usage(10, 4), "m-1"
    call.status = 200

    server, (first, second) = recorded(call)
    assert (server.start_time, server.end_time) == (T0, T0 + 900)
    assert (first.start_time, first.end_time) == (T0 + 100, T0 + 200)
    assert (second.start_time, second.end_time) == (T0 + 300, T0 + 800)
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["error.type"] == "server"
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "500 from upstream"
    assert second.attributes["switchboard.attempt"] == 2
    assert second.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert second.attributes["gen_ai.usage.output_tokens"] == 4
    assert server.attributes is not None
    assert server.attributes["gen_ai.provider.name"] == "openai"
    assert server.attributes["gen_ai.usage.input_tokens"] == 10
    assert server.attributes["switchboard.cost_usd"] == 0.0
    assert [(e.name, e.timestamp) for e in server.events] == [("cascade.escalate", T0 + 250)]
    assert server.status.status_code is StatusCode.UNSET


def test_an_escaping_exception_is_recorded_on_both_spans_without_a_cost() -> None:
    rt = runtime()
    call = call_of(rt)
    try:
        raise ValueError("bad")
    except ValueError as exc:
        call.tried.append(AttemptNote(rt.models["gpt-4o"], 1, T0 + 1, T0 + 2, exception=exc))
        call.exception = exc

    server, (client,) = recorded(call)
    for span in (server, client):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: bad"
        assert [e.name for e in span.events] == ["exception"]
    assert server.attributes is not None
    assert "switchboard.cost_usd" not in server.attributes


def test_a_broken_stream_and_an_error_status_mark_the_span() -> None:
    call = call_of(runtime())
    call.broken, call.status = "the provider ended the stream without [DONE]", 200
    server, _ = recorded(call)
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "the provider ended the stream without [DONE]"

    call = call_of(runtime())
    call.status = 429
    server, children = recorded(call)
    assert server.status.status_code is StatusCode.ERROR
    assert children == []


def test_content_reaches_the_span_only_when_captured() -> None:
    for capture in (False, True):
        call = call_of(runtime(capture=capture))
        call.completion, call.status = ("hello", "stop"), 200
        server, _ = recorded(call)
        assert server.attributes is not None
        assert ("gen_ai.input.messages" in server.attributes) is capture
        assert ("gen_ai.output.messages" in server.attributes) is capture
