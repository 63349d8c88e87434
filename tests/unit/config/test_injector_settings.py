"""InjectorSettings: usable defaults, the versioned file, and the operator's webhook settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from switchboard.api import names
from switchboard.config.load import (
    ConfigError,
    injector_settings_from_documents,
    parse_documents,
)
from switchboard.config.model import InjectorSettings, OperatorSettings


def settings_from(text: str) -> InjectorSettings:
    return injector_settings_from_documents(parse_documents(text, "injector.yaml"))


def test_defaults_need_no_file() -> None:
    settings = InjectorSettings()
    assert (settings.port, settings.default_policy, settings.failure_policy) == (
        names.DEFAULT_PORT,
        "default",
        "Ignore",
    )
    assert settings.resources.requests.memory is not None


def test_file_in_camel_case_is_read() -> None:
    settings = settings_from(
        "kind: InjectorSettings\nversion: 1\nimage: r.example/switchboard:1\n"
        "metricsPort: 9100\nresources: {limits: {cpu: '1'}}\nfailurePolicy: Fail\n"
        "env: {SWITCHBOARD_LOG_LEVEL: DEBUG}\n"
    )
    assert settings.image == "r.example/switchboard:1"
    assert settings.metrics_port == 9100
    assert settings.resources.limits.cpu == "1"
    assert settings.resources.limits.memory is None
    assert settings.failure_policy == "Fail"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 2\n", "injector.yaml: version"),
        ("imagePullPolicy: Sometimes\n", "injector.yaml: imagePullPolicy"),
        ("sidecarPort: 1\n", "injector.yaml: sidecarPort"),
        ("port: 9000\nmetricsPort: 9000\n", "port and metricsPort must differ"),
        ("resources: {requests: {memory: lots}}\n", "injector.yaml: resources.requests.memory"),
        ("configDir: etc\n", "injector.yaml: configDir"),
        ("a: 1\n---\nb: 2\n", "expected one InjectorSettings, found 2"),
    ],
)
def test_bad_file_is_refused_with_the_path(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(text)
    assert problem in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    from switchboard.config.load import load_injector_settings

    with pytest.raises(ConfigError, match="cannot read"):
        load_injector_settings(tmp_path / "absent.yaml")


def test_webhook_needs_a_certificate_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--webhook-cert"):
        OperatorSettings(webhook_port=9443, webhook_cert=tmp_path / "tls.crt")
    settings = OperatorSettings(
        webhook_port=9443, webhook_cert=tmp_path / "tls.crt", webhook_key=tmp_path / "tls.key"
    )
    assert settings.webhook_host == "0.0.0.0"
    assert OperatorSettings().webhook_port is None
