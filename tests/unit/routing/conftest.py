"""Routing test helpers: RuntimeConfigs built through the real load path, and base facts.

A policy is a RoutingPolicy manifest dict, run through `config_from_documents` and
`compile_runtime` with explicit prices (no catalog: a model without a price fails to load).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from switchboard.config.load import config_from_documents
from switchboard.config.runtime import RouteRuntime, RuntimeConfig, compile_runtime
from switchboard.pricing.cost import UnitPrice
from switchboard.routing.match import RequestFacts

# provider name -> region tag (None: untagged)
PROVIDERS: Mapping[str, str | None] = {"openai": "us", "mistral": "eu", "local": None}
# model name -> (provider, input USD/MTok, output USD/MTok)
MODELS: Mapping[str, tuple[str, str, str]] = {
    "gpt-4o": ("openai", "2.50", "10.00"),
    "gpt-4o-mini": ("openai", "0.15", "0.60"),
    "mistral-small": ("mistral", "0.20", "0.60"),
    "qwen3-8b": ("local", "0.05", "0.10"),
}

Manifest = dict[str, Any]
RuntimeFor = Callable[..., RuntimeConfig]
RouteFor = Callable[..., RouteRuntime]


def policy_manifest(
    routes: Sequence[Mapping[str, Any]],
    *,
    providers: Mapping[str, str | None] = PROVIDERS,
    models: Mapping[str, tuple[str, str, str]] = MODELS,
    data_residency: Mapping[str, Sequence[str]] | None = None,
) -> Manifest:
    """A RoutingPolicy manifest as a user would apply it."""
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "test", "namespace": "shop"},
        "spec": {
            "providers": [
                {"name": name, "baseURL": f"https://{name}.example/v1"}
                | ({"region": region} if region is not None else {})
                for name, region in providers.items()
            ],
            "models": [
                {
                    "name": name,
                    "provider": provider,
                    "price": {"inputPerMTok": price_in, "outputPerMTok": price_out},
                }
                for name, (provider, price_in, price_out) in models.items()
            ],
            "routes": [dict(r) for r in routes],
            "dataResidency": {k: list(v) for k, v in (data_residency or {}).items()},
        },
    }


def _no_catalog(model: str, provider: str | None) -> UnitPrice | None:
    return None


def runtime_of(manifest: Manifest) -> RuntimeConfig:
    """Load and compile `manifest` the way the sidecar does."""
    config = config_from_documents([("test", manifest)])
    return compile_runtime(config, env={}, price_lookup=_no_catalog)


def _target(spec: str | tuple[str, int]) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"model": spec}
    return {"model": spec[0], "weight": spec[1]}


def route_spec(
    name: str,
    targets: Sequence[str | tuple[str, int]],
    *,
    strategy: str = "fixed",
    fallback: Sequence[str | tuple[str, int]] = (),
    match: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A route of a manifest; targets are model names or (model, weight)."""
    spec: dict[str, Any] = {
        "name": name,
        "strategy": strategy,
        "targets": [_target(t) for t in targets],
        "fallback": [_target(t) for t in fallback],
    }
    if match is not None:
        spec["match"] = dict(match)
    return spec


@pytest.fixture(scope="session")
def runtime_for() -> RuntimeFor:
    """`runtime_for(routes, providers=..., models=..., data_residency=...)` -> RuntimeConfig."""

    def build(routes: Sequence[Mapping[str, Any]], **kwargs: Any) -> RuntimeConfig:
        return runtime_of(policy_manifest(routes, **kwargs))

    return build


@pytest.fixture(scope="session")
def route_spec_for() -> Callable[..., dict[str, Any]]:
    """`route_spec_for(name, targets, strategy=..., fallback=..., match=...)` -> route dict."""
    return route_spec


@pytest.fixture(scope="session")
def route_for() -> RouteFor:
    """`route_for(targets, strategy=..., fallback=...)` -> the one route of a default policy."""

    def build(targets: Sequence[str | tuple[str, int]], **kwargs: Any) -> RouteRuntime:
        return runtime_of(policy_manifest([route_spec("r", targets, **kwargs)])).routes[0]

    return build


@pytest.fixture
def facts() -> RequestFacts:
    """A plain request: no team, task, class or region; 1000 tokens in, 500 out at most."""
    return RequestFacts(
        feature="checkout",
        team=None,
        task=None,
        requested_model="gpt-4o",
        traffic_class=None,
        region=None,
        prompt_tokens=1000,
        max_output_tokens=500,
    )
