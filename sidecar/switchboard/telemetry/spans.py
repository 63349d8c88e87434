"""Edge: OpenTelemetry tracing of the sidecar — the tracer, trace continuation, span names.

Export is configured by the standard OTEL_* environment variables: with no exporter configured
the tracer is a no-op and costs next to nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import orjson
from opentelemetry.sdk.resources import Resource

from switchboard.telemetry.tracing import NoTracing, Tracing

log = logging.getLogger(__name__)

TRACER_NAME = "switchboard.sidecar"

# GenAI semantic conventions and Switchboard's own attributes.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
COST = "switchboard.cost_usd"
FEATURE = "switchboard.feature"
TEAM = "switchboard.team"
ROUTE = "switchboard.route"
CACHE = "switchboard.cache"
ATTEMPT = "switchboard.attempt"
ERROR_KIND = "error.type"
PROMPT = "gen_ai.input.messages"
COMPLETION = "gen_ai.output.messages"


def input_messages(messages: object) -> str:
    """Chat messages as `gen_ai.input.messages` (JSON, role and parts); only on opt-in."""
    out = [
        {"role": str(m.get("role")), "parts": _parts(m.get("content"))}
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, Mapping)
    ]
    return orjson.dumps(out).decode()


def output_messages(text: str, finish_reason: str | None) -> str:
    """An answer as `gen_ai.output.messages` (JSON); only on opt-in."""
    message: dict[str, object] = {"role": "assistant", "parts": _parts(text)}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return orjson.dumps([message]).decode()


def _parts(content: object) -> list[dict[str, str]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, str]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        text = part.get("text")
        if part.get("type") == "text" and isinstance(text, str):
            parts.append({"type": "text", "content": text})
        else:
            parts.append({"type": str(part.get("type"))})
    return parts


def tracing_from_env(
    env: Mapping[str, str], service_name: str = "switchboard-sidecar"
) -> Tracing | None:
    """Spans exported over OTLP/HTTP in batches (OTEL_BSP_*, `batching`) when OTEL_* asks for
    it, else None (also when the OTLP settings cannot be used: that is logged)."""
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp" if _otlp_endpoint(env) else "none")
    if exporter.strip().lower() in ("none", "") or env.get("OTEL_SDK_DISABLED") == "true":
        return None
    from switchboard.telemetry.batching import SpanBatcher, batch_settings
    from switchboard.telemetry.otlp import ExporterConfigError, OTLPSpanExporter

    try:
        span_exporter = OTLPSpanExporter(env)
    except ExporterConfigError as exc:
        log.error("tracing disabled: %s", exc)
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", service_name)})
    batcher = SpanBatcher(span_exporter, batch_settings(env))
    return Tracing(batcher, resource=resource, scope=TRACER_NAME)


def _otlp_endpoint(env: Mapping[str, str]) -> str | None:
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")


Tracer = Tracing | NoTracing


def tracer_from(tracing: Tracing | None) -> Tracer:
    """The sidecar's tracer; one that records nothing when no exporter is configured."""
    return NoTracing() if tracing is None else tracing


def default_env() -> Mapping[str, str]:
    """Edge: the process environment, for `tracing_from_env`."""
    return os.environ
