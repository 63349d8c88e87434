"""Pure: which models a request tries, in which order. Owns `plan_attempts` and the five
strategies that order a route's targets.

- fixed: as listed.
- weighted: a weighted random order without replacement (each next target drawn with
  probability weight / remaining total). Weight 0 targets are never drawn; they follow the
  weighted ones in listed order (as when every weight is 0).
- cheapest, cascade: ascending expected cost of the request; ties keep listed order.
- fastest: ascending latency EWMA; targets without a measurement come first, to get one;
  ties keep listed order.

Fallbacks follow in listed order. A model appears once. Targets residency forbids are skipped
and never tried; targets whose breaker is open or that rest after a 429 are skipped too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from switchboard.config.runtime import ModelRuntime, RouteRuntime, TargetRuntime
from switchboard.pricing.cost import Usage, cost_of
from switchboard.routing.breaker import TargetHealth, available_at, breaker_state
from switchboard.routing.match import RequestFacts
from switchboard.routing.residency import residency_allows

Source = Literal["target", "fallback"]
SkipReason = Literal["residency", "circuit_open", "resting"]


@dataclass(frozen=True, slots=True)
class Step:
    """One model to try, in order."""

    model: ModelRuntime
    source: Source


@dataclass(frozen=True, slots=True)
class Skipped:
    """A model of the route that will not be tried, and why."""

    model: ModelRuntime
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Plan:
    """The attempts of one request. `wait_seconds`: when there are no steps because of
    breakers or rests, how long until the first skipped model is available; else None."""

    route: RouteRuntime
    steps: tuple[Step, ...]
    skipped: tuple[Skipped, ...]
    wait_seconds: float | None


def expected_cost(model: ModelRuntime, facts: RequestFacts) -> Decimal:
    """What the request would cost on `model` if it used all its output tokens."""
    return cost_of(Usage(facts.prompt_tokens, facts.max_output_tokens), model.price)


def _weighted_order(targets: Sequence[TargetRuntime], rng: random.Random) -> list[TargetRuntime]:
    remaining = list(targets)
    order: list[TargetRuntime] = []
    while remaining:
        total = sum(t.weight for t in remaining)
        if total == 0:
            return order + remaining
        point = rng.randrange(total)
        for i, target in enumerate(remaining):
            point -= target.weight
            if point < 0:
                order.append(remaining.pop(i))
                break
    return order


def ordered_targets(
    route: RouteRuntime,
    facts: RequestFacts,
    latency: Mapping[str, float],
    rng: random.Random,
) -> list[TargetRuntime]:
    """`route.targets` in the order its strategy tries them."""
    targets = route.targets
    match route.spec.strategy:
        case "fixed":
            return list(targets)
        case "weighted":
            return _weighted_order(targets, rng)
        case "cheapest" | "cascade":
            return sorted(targets, key=lambda t: expected_cost(t.model, facts))
        case "fastest":
            return sorted(targets, key=lambda t: _latency_key(latency.get(t.model.name)))


def _latency_key(seconds: float | None) -> tuple[int, float]:
    return (0, 0.0) if seconds is None else (1, seconds)


def _skip_reason(
    model: ModelRuntime,
    allowed_regions: frozenset[str] | None,
    health: TargetHealth | None,
    now: float,
) -> SkipReason | None:
    if not residency_allows(model.provider.region, allowed_regions):
        return "residency"
    if health is None:
        return None
    state = breaker_state(health, now)
    if state == "open":
        return "circuit_open"
    if state == "resting":
        return "resting"
    return None


def _candidates(
    route: RouteRuntime,
    facts: RequestFacts,
    latency: Mapping[str, float],
    rng: random.Random,
    override_model: ModelRuntime | None,
) -> list[Step]:
    if override_model is not None:
        return [Step(override_model, "target")]
    targets = [Step(t.model, "target") for t in ordered_targets(route, facts, latency, rng)]
    return targets + [Step(t.model, "fallback") for t in route.fallback]


def plan_attempts(
    route: RouteRuntime,
    facts: RequestFacts,
    *,
    allowed_regions: frozenset[str] | None,
    health: Mapping[str, TargetHealth],
    latency: Mapping[str, float],
    now: float,
    rng: random.Random,
    override_model: ModelRuntime | None = None,
) -> Plan:
    """The models to try for `facts` on `route`, in order, and those left out.

    `health` and `latency` are keyed by model name; a missing entry is healthy / unmeasured.
    `override_model` (a budget downgrade) replaces the route's targets and fallbacks; it is
    still subject to residency and its breaker.
    """
    steps: list[Step] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for step in _candidates(route, facts, latency, rng, override_model):
        name = step.model.name
        if name in seen:
            continue
        seen.add(name)
        reason = _skip_reason(step.model, allowed_regions, health.get(name), now)
        if reason is None:
            steps.append(step)
        else:
            skipped.append(Skipped(step.model, reason))
    waits = [available_at(health[s.model.name]) - now for s in skipped if s.reason != "residency"]
    wait_seconds = min(waits) if not steps and waits else None
    return Plan(route, tuple(steps), tuple(skipped), wait_seconds)
