"""Fixtures for loopback integration tests: mock providers and sidecars as real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.mock_provider import MockProvider
from tests.support.sidecar import Sidecar, write_manifests

MockFactory = Callable[..., MockProvider]
SidecarFactory = Callable[..., Sidecar]


@pytest.fixture
def mocks() -> Iterator[MockFactory]:
    """Start mock providers: `mocks("openai", api_key="k")`; all stop after the test."""
    started: list[MockProvider] = []

    def start(name: str = "mock", **kwargs: Any) -> MockProvider:
        mock = MockProvider(name, **kwargs)
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.stop()


@pytest.fixture
def sidecars(tmp_path: Path) -> Iterator[SidecarFactory]:
    """Start sidecars on written manifests: `sidecars(policy_doc, *budgets, env={...})`."""
    started: list[Sidecar] = []

    def start(
        *documents: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        config: Path | None = None,
    ) -> Sidecar:
        path = config or write_manifests(tmp_path / f"policy-{len(started)}.yaml", *documents)
        sidecar = Sidecar(path, env=env, args=args)
        sidecar.config = path  # type: ignore[attr-defined]
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()


def client_for(sidecar: Sidecar, **kwargs: Any) -> openai.OpenAI:
    """The official SDK pointed at a sidecar; no SDK retries, so tests see the sidecar's answer."""
    return openai.OpenAI(base_url=sidecar.url, api_key="unused", max_retries=0, **kwargs)
