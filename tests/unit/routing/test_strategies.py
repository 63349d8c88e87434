from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from switchboard.config.runtime import RouteRuntime
from switchboard.routing.breaker import TargetHealth
from switchboard.routing.match import RequestFacts
from switchboard.routing.strategies import Plan, expected_cost, plan_attempts

RouteFor = Callable[..., RouteRuntime]
NOW = 1000.0


def plan(
    route: RouteRuntime,
    facts: RequestFacts,
    *,
    allowed_regions: frozenset[str] | None = None,
    health: Mapping[str, TargetHealth] | None = None,
    latency: Mapping[str, float] | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Plan:
    return plan_attempts(
        route,
        facts,
        allowed_regions=allowed_regions,
        health=health or {},
        latency=latency or {},
        now=NOW,
        rng=random.Random(seed),
        **kwargs,
    )


def step_names(p: Plan) -> list[str]:
    return [s.model.name for s in p.steps]


def skipped_of(p: Plan) -> list[tuple[str, str]]:
    return [(s.model.name, s.reason) for s in p.skipped]


# expected_cost


def test_expected_cost_prices_prompt_and_max_output(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    gpt4o = route_for(["gpt-4o"]).targets[0].model  # 2.50 in, 10.00 out per MTok
    assert expected_cost(gpt4o, facts) == Decimal("0.0075")  # 1000 * 2.5e-6 + 500 * 1e-5


# fixed


def test_fixed_keeps_listed_order_then_fallbacks(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(["gpt-4o", "qwen3-8b"], fallback=["mistral-small", "gpt-4o-mini"])
    p = plan(route, facts)
    assert step_names(p) == ["gpt-4o", "qwen3-8b", "mistral-small", "gpt-4o-mini"]
    assert [s.source for s in p.steps] == ["target", "target", "fallback", "fallback"]
    assert p.route is route
    assert p.skipped == ()
    assert p.wait_seconds is None


def test_model_in_targets_and_fallback_appears_once_as_target(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    route = route_for(["gpt-4o", "gpt-4o"], fallback=["qwen3-8b", "gpt-4o", "qwen3-8b"])
    p = plan(route, facts)
    assert [(s.model.name, s.source) for s in p.steps] == [
        ("gpt-4o", "target"),
        ("qwen3-8b", "fallback"),
    ]


# weighted


def test_weighted_first_choice_follows_weights(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for([("gpt-4o", 3), ("qwen3-8b", 1)], strategy="weighted")
    rng = random.Random(7)
    firsts = Counter(
        plan_attempts(route, facts, allowed_regions=None, health={}, latency={}, now=NOW, rng=rng)
        .steps[0]
        .model.name
        for _ in range(4000)
    )
    assert 0.72 < firsts["gpt-4o"] / 4000 < 0.78


def test_weighted_order_holds_every_target_once(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(
        [("gpt-4o", 1), ("qwen3-8b", 2), ("mistral-small", 3)],
        strategy="weighted",
        fallback=["gpt-4o-mini"],
    )
    for seed in range(50):
        names = step_names(plan(route, facts, seed=seed))
        assert sorted(names[:3]) == ["gpt-4o", "mistral-small", "qwen3-8b"]
        assert names[3] == "gpt-4o-mini"


def test_weighted_zero_weight_comes_after_weighted_targets(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    route = route_for(
        [("qwen3-8b", 0), ("gpt-4o", 1), ("gpt-4o-mini", 0), ("mistral-small", 1)],
        strategy="weighted",
    )
    for seed in range(50):
        names = step_names(plan(route, facts, seed=seed))
        assert sorted(names[:2]) == ["gpt-4o", "mistral-small"]
        assert names[2:] == ["qwen3-8b", "gpt-4o-mini"]


def test_weighted_same_seed_same_order(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for([("gpt-4o", 1), ("qwen3-8b", 1), ("mistral-small", 1)], strategy="weighted")
    orders = {tuple(step_names(plan(route, facts, seed=seed))) for seed in range(40)}
    assert len(orders) > 1
    assert step_names(plan(route, facts, seed=3)) == step_names(plan(route, facts, seed=3))


# cheapest and cascade


@pytest.mark.parametrize("strategy", ["cheapest", "cascade"])
def test_cost_strategy_orders_by_expected_cost(
    route_for: RouteFor, facts: RequestFacts, strategy: str
) -> None:
    route = route_for(
        ["gpt-4o", "mistral-small", "qwen3-8b", "gpt-4o-mini"],
        strategy=strategy,
        fallback=["gpt-4o"],
    )
    assert step_names(plan(route, facts)) == ["qwen3-8b", "gpt-4o-mini", "mistral-small", "gpt-4o"]


@pytest.mark.parametrize("strategy", ["cheapest", "cascade"])
def test_cost_strategy_depends_on_request_shape(
    runtime_for: Callable[..., Any],
    route_spec_for: Callable[..., Any],
    facts: RequestFacts,
    strategy: str,
) -> None:
    models = {"reader": ("openai", "0.10", "5.00"), "writer": ("openai", "1.00", "0.50")}
    runtime = runtime_for(
        [route_spec_for("r", ["reader", "writer"], strategy=strategy)], models=models
    )
    route = runtime.routes[0]
    long_prompt = replace(facts, prompt_tokens=100_000, max_output_tokens=10)
    long_answer = replace(facts, prompt_tokens=10, max_output_tokens=100_000)
    assert step_names(plan(route, long_prompt)) == ["reader", "writer"]
    assert step_names(plan(route, long_answer)) == ["writer", "reader"]


def test_cheapest_ties_keep_listed_order(
    runtime_for: Callable[..., Any], route_spec_for: Callable[..., Any], facts: RequestFacts
) -> None:
    models = {name: ("openai", "1", "1") for name in ("b", "a", "c")}
    runtime = runtime_for(
        [route_spec_for("r", ["b", "a", "c"], strategy="cheapest")], models=models
    )
    assert step_names(plan(runtime.routes[0], facts)) == ["b", "a", "c"]


# fastest


def test_fastest_orders_by_latency(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(["gpt-4o", "qwen3-8b", "mistral-small"], strategy="fastest")
    latency = {"gpt-4o": 0.9, "qwen3-8b": 0.2, "mistral-small": 0.5}
    assert step_names(plan(route, facts, latency=latency)) == [
        "qwen3-8b",
        "mistral-small",
        "gpt-4o",
    ]


def test_fastest_tries_unmeasured_targets_first(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(["gpt-4o", "qwen3-8b", "mistral-small", "gpt-4o-mini"], strategy="fastest")
    latency = {"gpt-4o": 0.9, "mistral-small": 0.1}
    assert step_names(plan(route, facts, latency=latency)) == [
        "qwen3-8b",
        "gpt-4o-mini",
        "mistral-small",
        "gpt-4o",
    ]


def test_fastest_ties_keep_listed_order(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(["gpt-4o", "qwen3-8b", "mistral-small"], strategy="fastest")
    latency = {"gpt-4o": 0.5, "qwen3-8b": 0.5, "mistral-small": 0.5}
    assert step_names(plan(route, facts, latency=latency)) == [
        "gpt-4o",
        "qwen3-8b",
        "mistral-small",
    ]


# residency


def test_residency_skips_targets_and_fallbacks_elsewhere(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    route = route_for(["gpt-4o", "mistral-small"], fallback=["qwen3-8b", "gpt-4o-mini"])
    p = plan(route, facts, allowed_regions=frozenset({"eu"}))
    assert step_names(p) == ["mistral-small"]
    assert skipped_of(p) == [
        ("gpt-4o", "residency"),
        ("qwen3-8b", "residency"),  # untagged provider
        ("gpt-4o-mini", "residency"),
    ]


def test_residency_forbidding_everything_leaves_no_steps_and_no_wait(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    p = plan(route_for(["gpt-4o"], fallback=["qwen3-8b"]), facts, allowed_regions=frozenset())
    assert p.steps == ()
    assert skipped_of(p) == [("gpt-4o", "residency"), ("qwen3-8b", "residency")]
    assert p.wait_seconds is None


# breaker and rest


def test_open_and_resting_targets_are_skipped(route_for: RouteFor, facts: RequestFacts) -> None:
    route = route_for(["gpt-4o", "qwen3-8b"], fallback=["mistral-small"])
    health = {
        "gpt-4o": TargetHealth(consecutive_failures=5, open_until=NOW + 10),
        "qwen3-8b": TargetHealth(resting_until=NOW + 2),
    }
    p = plan(route, facts, health=health)
    assert [(s.model.name, s.source) for s in p.steps] == [("mistral-small", "fallback")]
    assert skipped_of(p) == [("gpt-4o", "circuit_open"), ("qwen3-8b", "resting")]
    assert p.wait_seconds is None


def test_half_open_and_recovered_targets_are_tried(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    health = {
        "gpt-4o": TargetHealth(consecutive_failures=5, open_until=NOW - 1),
        "qwen3-8b": TargetHealth(resting_until=NOW),
    }
    p = plan(route_for(["gpt-4o", "qwen3-8b"]), facts, health=health)
    assert step_names(p) == ["gpt-4o", "qwen3-8b"]
    assert p.skipped == ()


def test_all_unavailable_waits_for_first_to_recover(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    health = {
        "gpt-4o": TargetHealth(consecutive_failures=5, open_until=NOW + 30),
        "qwen3-8b": TargetHealth(resting_until=NOW + 4),
        # open for 2 more seconds, but resting for 8: available in 8
        "mistral-small": TargetHealth(
            consecutive_failures=5, open_until=NOW + 2, resting_until=NOW + 8
        ),
    }
    p = plan(route_for(["gpt-4o", "qwen3-8b"], fallback=["mistral-small"]), facts, health=health)
    assert p.steps == ()
    assert p.wait_seconds == pytest.approx(4.0)


def test_residency_skips_do_not_count_for_wait(route_for: RouteFor, facts: RequestFacts) -> None:
    health = {"mistral-small": TargetHealth(resting_until=NOW + 6)}
    p = plan(
        route_for(["gpt-4o", "mistral-small"]),
        facts,
        allowed_regions=frozenset({"eu"}),
        health=health,
    )
    assert skipped_of(p) == [("gpt-4o", "residency"), ("mistral-small", "resting")]
    assert p.wait_seconds == pytest.approx(6.0)


# override (budget downgrade)


def test_override_model_replaces_targets_and_fallbacks(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    route = route_for(["gpt-4o"], fallback=["mistral-small"])
    mini = route_for(["gpt-4o-mini"]).targets[0].model
    p = plan(route, facts, override_model=mini)
    assert [(s.model.name, s.source) for s in p.steps] == [("gpt-4o-mini", "target")]
    assert p.route is route
    assert p.skipped == ()


def test_override_model_elsewhere_is_skipped_for_residency(
    route_for: RouteFor, facts: RequestFacts
) -> None:
    mini = route_for(["gpt-4o-mini"]).targets[0].model
    p = plan(
        route_for(["mistral-small"]), facts, allowed_regions=frozenset({"eu"}), override_model=mini
    )
    assert p.steps == ()
    assert skipped_of(p) == [("gpt-4o-mini", "residency")]
    assert p.wait_seconds is None


def test_override_model_with_open_breaker_waits(route_for: RouteFor, facts: RequestFacts) -> None:
    mini = route_for(["gpt-4o-mini"]).targets[0].model
    health = {"gpt-4o-mini": TargetHealth(consecutive_failures=5, open_until=NOW + 3)}
    p = plan(route_for(["gpt-4o"]), facts, health=health, override_model=mini)
    assert skipped_of(p) == [("gpt-4o-mini", "circuit_open")]
    assert p.wait_seconds == pytest.approx(3.0)
