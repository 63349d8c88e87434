"""Edge: a request's spans, built from its `Call` once its answer is out.

The pipeline notes on the `Call` what the spans will say as it happens (when each attempt ran
and how it ended, the cache state, the answer's usage, a cascade's escalations, an error), and
`record_spans` turns those notes into one SERVER span and a CLIENT child per upstream attempt,
with their real start and end times, once the sidecar next waits for a provider
(`accounting.finished` hands it to `Deps.when_idle`). Sampling, ids and attributes thus cost the
request nothing before its answer.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from switchboard.pricing.cost import Usage
from switchboard.sidecar.call import AttemptNote, Call
from switchboard.telemetry import spans


def record_spans(call: Call, tracer: spans.Tracer, end_ns: int) -> None:
    """The request's SERVER span and a CLIENT child per attempt, ended at `end_ns`."""
    facts = call.facts
    server = tracer.start(
        f"{call.endpoint} {facts.requested_model}",
        kind=SpanKind.SERVER,
        context=extract(call.trace_headers) if call.trace_headers else None,
        start_time=call.start_ns,
        attributes={
            spans.OPERATION: call.endpoint,
            spans.REQUEST_MODEL: facts.requested_model,
            spans.FEATURE: facts.feature,
            spans.TEAM: facts.team or "",
            spans.ROUTE: call.route.name,
        },
    )
    if not server.is_recording():
        return  # not sampled
    capture = call.endpoint == "chat" and call.runtime.config.spec.telemetry.capture_content
    if capture:
        server.set_attribute(spans.PROMPT, spans.input_messages(call.body["messages"]))
    server.set_attribute(spans.CACHE, call.cache)
    for note in call.tried:
        _attempt_span(call, note, server, tracer)
    for name, attributes, at in call.events:
        server.add_event(name, attributes, at)
    answer = _answer_attributes(call.usage, call.response_model)
    if call.answered_by:
        answer[spans.PROVIDER] = call.answered_by
    server.set_attributes(answer)
    if capture and call.completion is not None:
        server.set_attribute(spans.COMPLETION, spans.output_messages(*call.completion))
    if call.broken is not None:
        server.set_status(Status(StatusCode.ERROR, call.broken))
    if call.exception is not None:
        _record_exception(server, call.exception)
    elif call.status is not None:
        server.set_attribute(spans.COST, float(call.spent))
        if call.status >= 400:
            server.set_status(Status(StatusCode.ERROR))
    server.end(end_ns)


def _attempt_span(call: Call, note: AttemptNote, server: trace.Span, tracer: spans.Tracer) -> None:
    model = note.model
    span = tracer.start(
        f"{call.endpoint} {model.upstream_model}",
        parent=server,
        kind=SpanKind.CLIENT,
        start_time=note.start_ns,
        attributes={
            spans.OPERATION: call.endpoint,
            spans.PROVIDER: model.provider.name,
            spans.REQUEST_MODEL: model.upstream_model,
            spans.ATTEMPT: note.number,
            spans.ROUTE: call.route.name,
        },
    )
    if note.error is not None:
        span.set_attribute(spans.ERROR_KIND, note.error.kind)
        span.set_status(Status(StatusCode.ERROR, note.error.message))
    else:
        span.set_attributes(_answer_attributes(note.usage, note.response_model))
    if note.exception is not None:
        _record_exception(span, note.exception)
    span.end(note.end_ns or None)


def _answer_attributes(usage: Usage | None, response_model: str | None) -> dict[str, str | int]:
    """The response model and token counts an answer reported."""
    values: dict[str, str | int] = {}
    if response_model:
        values[spans.RESPONSE_MODEL] = response_model
    if usage is not None:
        values[spans.INPUT_TOKENS] = usage.input_tokens
        values[spans.OUTPUT_TOKENS] = usage.output_tokens
    return values


def _record_exception(span: trace.Span, exc: Exception) -> None:
    """As `tracer.start_as_current_span` records an exception that escapes its block."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
