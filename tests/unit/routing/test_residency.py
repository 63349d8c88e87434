from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.config.runtime import RuntimeConfig
from switchboard.routing.breaker import TargetHealth
from switchboard.routing.match import RequestFacts, match_route
from switchboard.routing.residency import residency_allows
from switchboard.routing.strategies import plan_attempts

EU = frozenset({"eu"})


def test_unrestricted_request_reaches_any_provider() -> None:
    assert residency_allows("us", None)
    assert residency_allows(None, None)


def test_restricted_request_reaches_allowed_region() -> None:
    assert residency_allows("eu", EU)
    assert residency_allows("eu", frozenset({"eu", "ch"}))


def test_restricted_request_never_reaches_other_region() -> None:
    assert not residency_allows("us", EU)


def test_restricted_request_never_reaches_untagged_provider() -> None:
    assert not residency_allows(None, EU)


def test_empty_allowed_set_reaches_no_provider() -> None:
    assert not residency_allows("eu", frozenset())


# Property: over random policies and requests, no planned step leaves the allowed regions.

PROVIDER_REGIONS = [None, "eu", "us", "apac"]
USER_REGIONS = ["eu", "us", "apac", "ch"]
MODEL_NAMES = [f"m{i}" for i in range(6)]  # a superset of any policy's models
STRATEGIES = ["fixed", "weighted", "cheapest", "fastest", "cascade"]


@dataclass(frozen=True)
class Policy:
    providers: dict[str, str | None]
    models: dict[str, tuple[str, str, str]]
    routes: list[dict[str, Any]]
    data_residency: dict[str, list[str]]


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    providers = {
        f"p{i}": draw(st.sampled_from(PROVIDER_REGIONS)) for i in range(draw(st.integers(1, 4)))
    }
    prices = st.integers(0, 20).map(str)
    models = {
        name: (draw(st.sampled_from(sorted(providers))), draw(prices), draw(prices))
        for name in MODEL_NAMES[: draw(st.integers(1, len(MODEL_NAMES)))]
    }
    target = st.fixed_dictionaries(
        {"model": st.sampled_from(sorted(models)), "weight": st.integers(0, 3)}
    )
    count = draw(st.integers(1, 3))
    routes: list[dict[str, Any]] = []
    for i in range(count):
        route: dict[str, Any] = {
            "name": f"r{i}",
            "strategy": draw(st.sampled_from(STRATEGIES)),
            "targets": draw(st.lists(target, min_size=1, max_size=4)),
            "fallback": draw(st.lists(target, max_size=3)),
        }
        if route["strategy"] == "weighted" and not any(t["weight"] for t in route["targets"]):
            route["targets"][0]["weight"] = 1
        if i < count - 1 or draw(st.booleans()):
            route["match"] = {"regions": draw(st.lists(st.sampled_from(USER_REGIONS), min_size=1))}
        routes.append(route)
    tagged = sorted({r for r in providers.values() if r is not None})
    allowed = st.lists(st.sampled_from(tagged), unique=True) if tagged else st.just([])
    residency = draw(st.dictionaries(st.sampled_from(USER_REGIONS), allowed))
    return Policy(providers, models, routes, residency)


healths = st.builds(
    TargetHealth,
    consecutive_failures=st.integers(0, 6),
    open_until=st.floats(0, 200),
    resting_until=st.floats(0, 200),
)


@dataclass(frozen=True)
class Request:
    facts: RequestFacts
    health: dict[str, TargetHealth]
    latency: dict[str, float]
    now: float
    seed: int
    override: str | None


_names = st.sampled_from(MODEL_NAMES)
requests = st.builds(
    Request,
    facts=st.builds(
        RequestFacts,
        feature=st.just("checkout"),
        team=st.none(),
        task=st.none(),
        requested_model=_names,
        traffic_class=st.none(),
        region=st.sampled_from([None, *USER_REGIONS]),
        prompt_tokens=st.integers(0, 100_000),
        max_output_tokens=st.integers(1, 10_000),
    ),
    health=st.dictionaries(_names, healths),
    latency=st.dictionaries(_names, st.floats(0, 10)),
    now=st.floats(0, 200),
    seed=st.integers(0, 2**32),
    override=st.none() | _names,
)


def policy_allows(policy: Policy, user_region: str | None, model: str) -> bool:
    """The oracle, read from the manifest: is `model` allowed for a user in `user_region`?"""
    allowed = policy.data_residency.get(user_region) if user_region is not None else None
    provider_region = policy.providers[policy.models[model][0]]
    return allowed is None or (provider_region is not None and provider_region in allowed)


@settings(max_examples=200, deadline=None)
@given(policy=policies(), batch=st.lists(requests, min_size=1, max_size=5))
def test_random_policies_never_plan_a_step_outside_allowed_regions(
    runtime_for: Callable[..., RuntimeConfig], policy: Policy, batch: list[Request]
) -> None:
    runtime = runtime_for(
        policy.routes,
        providers=policy.providers,
        models=policy.models,
        data_residency=policy.data_residency,
    )
    for request in batch:
        region = request.facts.region
        matched = match_route(runtime.routes, request.facts)
        for route in [matched, *runtime.routes] if matched else runtime.routes:
            plan = plan_attempts(
                route,
                request.facts,
                allowed_regions=runtime.allowed_regions(region),
                health=request.health,
                latency=request.latency,
                now=request.now,
                rng=random.Random(request.seed),
                override_model=runtime.models.get(request.override or ""),
            )
            names = [step.model.name for step in plan.steps]
            assert all(policy_allows(policy, region, name) for name in names), names
            assert len(names) == len(set(names))


def test_runtime_unknown_user_region_is_unrestricted(
    runtime_for: Callable[..., RuntimeConfig], route_spec_for: Callable[..., Mapping[str, Any]]
) -> None:
    runtime = runtime_for([route_spec_for("r", ["gpt-4o"])], data_residency={"eu": ["eu"]})
    assert runtime.allowed_regions("eu") == EU
    assert runtime.allowed_regions("br") is None
    assert runtime.allowed_regions(None) is None
