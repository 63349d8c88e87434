"""The OTLP exporter's configuration and retry arithmetic (pure: no connection is opened)."""

from __future__ import annotations

import pytest

from switchboard.telemetry.otlp import (
    DEFAULT_ENDPOINT,
    GIL_YIELD_SECONDS,
    ExporterConfigError,
    ExportSettings,
    OTLPSpanExporter,
    Pacer,
    export_settings,
    parse_headers,
    retry_delay,
)
from switchboard.telemetry.spans import tracing_from_env


def test_settings_default_to_the_local_collector_uncompressed() -> None:
    assert export_settings({}) == ExportSettings()
    assert ExportSettings().endpoint == DEFAULT_ENDPOINT == "http://localhost:4318/v1/traces"
    assert ExportSettings().timeout == 10


def test_generic_endpoint_gets_the_traces_path_and_the_traces_endpoint_is_used_as_is() -> None:
    generic = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"}
    assert export_settings(generic).endpoint == "https://collector:4318/v1/traces"
    traces = generic | {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"}
    assert export_settings(traces).endpoint == "http://c:9/custom"


def test_traces_variables_win_over_the_generic_ones() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "a=generic,b=generic",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=traces",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2.5",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/generic.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/traces.pem",
    }
    got = export_settings(env)
    assert got.headers == {"a": "traces"}
    assert (got.timeout, got.compression, got.certificate) == (2.5, "gzip", "/traces.pem")
    generic = export_settings({k: v for k, v in env.items() if "TRACES" not in k})
    assert generic.headers == {"a": "generic", "b": "generic"}
    assert (generic.timeout, generic.compression) == (3, "none")
    assert generic.certificate == "/generic.pem"


def test_headers_are_url_decoded_and_bad_entries_logged_without_their_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = "Authorization=Bearer%20sk-live-123%2C4 , x-tenant = acme,broken-sk-secret,=nokey,x=a%0Ab"
    assert parse_headers(raw) == {"authorization": "Bearer sk-live-123,4", "x-tenant": "acme"}
    assert "entry 3" in caplog.text and "entry 4" in caplog.text and "entry 5" in caplog.text
    for secret in ("sk-live", "sk-secret", "nokey", "a\nb"):
        assert secret not in caplog.text
    assert "sk-live" not in repr(export_settings({"OTEL_EXPORTER_OTLP_HEADERS": raw}))


def test_unusable_timeout_and_compression_fall_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got = export_settings(
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"}
    )
    assert (got.timeout, got.compression) == (10, "none")
    assert "'soon'" in caplog.text and "'deflate'" in caplog.text
    assert export_settings({"OTEL_EXPORTER_OTLP_TIMEOUT": "-1"}).timeout == 10


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
def test_another_protocol_is_warned_about_and_http_protobuf_used(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    export_settings({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol})
    assert f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported" in caplog.text
    assert "http/protobuf only" in caplog.text


def test_http_protobuf_protocol_is_accepted_silently(caplog: pytest.LogCaptureFixture) -> None:
    export_settings({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert caplog.text == ""


@pytest.mark.parametrize(
    "endpoint",
    ["localhost:4318", "grpc://collector:4317", "http://", "http://c:99999/", "http://c/a b"],
)
def test_an_unusable_endpoint_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ExporterConfigError):
        OTLPSpanExporter({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint})


def test_a_missing_ca_file_is_a_config_error() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
    }
    with pytest.raises(ExporterConfigError, match="TLS files"):
        OTLPSpanExporter(env)


def test_exporter_logs_name_the_endpoint_without_userinfo_or_query() -> None:
    exporter = OTLPSpanExporter(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://user:pw@c:4318/v1/traces?token=t"}
    )
    assert exporter.target == "http://c:4318/v1/traces"
    exporter.shutdown()


def test_backoff_doubles_from_one_second_times_the_jitter() -> None:
    delays = [retry_delay(n, None, now=0, jitter=1.0) for n in range(4)]
    assert delays == [1, 2, 4, 8]
    assert retry_delay(1, None, now=0, jitter=0.8) == pytest.approx(1.6)


def test_retry_after_in_seconds_or_as_a_date_wins_over_the_backoff() -> None:
    assert retry_delay(3, "0", now=0, jitter=1.0) == 0
    assert retry_delay(0, " 2.5 ", now=0, jitter=1.0) == 2.5
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_delay(0, date, now=1445412480 - 3, jitter=1.0) == 3
    assert retry_delay(0, date, now=1445412480 + 60, jitter=1.0) == 0
    assert retry_delay(2, "whenever", now=0, jitter=1.0) == 4
    assert retry_delay(2, "inf", now=0, jitter=1.0) == 4


def test_tracing_from_env_exports_only_when_asked() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert tracing_from_env({}) is None
    assert tracing_from_env(endpoint | {"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing_from_env(endpoint | {"OTEL_SDK_DISABLED": "true"}) is None
    tracing = tracing_from_env(endpoint | {"OTEL_SERVICE_NAME": "shop"})
    assert tracing is not None
    assert tracing.resource.attributes["service.name"] == "shop"
    tracing.shutdown()  # nothing was recorded: nothing is sent


def test_tracing_from_env_with_an_unusable_endpoint_is_none_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}) is None
    assert "tracing disabled: OTLP traces endpoint must be an http:// or https://" in caplog.text


def test_pacer_sleeps_so_that_the_work_takes_its_share_of_the_core() -> None:
    now = [10.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pacer(0.25, clock=lambda: now[0], sleep=sleep)
    for worked in (0.001, 0.0004, 0.0):
        now[0] += worked
        pace()
    assert slept == [pytest.approx(0.003), pytest.approx(0.0012), GIL_YIELD_SECONDS]
