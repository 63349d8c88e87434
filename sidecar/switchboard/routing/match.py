"""Pure: which route a request takes. Owns `RequestFacts` (what routing knows of a request)
and `match_route` (first route whose every present condition holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from switchboard.config.runtime import RouteRuntime


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What routing knows about one request, gathered by the edge."""

    feature: str
    team: str | None
    task: str | None
    requested_model: str
    traffic_class: str | None
    region: str | None
    prompt_tokens: int
    max_output_tokens: int


def _listed(allowed: Sequence[str] | None, value: str | None) -> bool:
    """A list condition: absent or empty matches anything, else `value` must be one of it."""
    if not allowed:
        return True
    return value is not None and value in allowed


def route_matches(route: RouteRuntime, facts: RequestFacts) -> bool:
    """Whether every condition `route` states holds for `facts`."""
    match = route.match
    if match is None:
        return True
    pattern = route.requested_model_pattern
    low, high = match.min_prompt_tokens, match.max_prompt_tokens
    return (
        _listed(match.features, facts.feature)
        and _listed(match.teams, facts.team)
        and _listed(match.tasks, facts.task)
        and _listed(match.traffic_class, facts.traffic_class)
        and _listed(match.regions, facts.region)
        and (pattern is None or pattern.fullmatch(facts.requested_model) is not None)
        and (low is None or facts.prompt_tokens >= low)
        and (high is None or facts.prompt_tokens <= high)
    )


def match_route(routes: Sequence[RouteRuntime], facts: RequestFacts) -> RouteRuntime | None:
    """The first route of `routes` that matches `facts`, or None."""
    return next((route for route in routes if route_matches(route, facts)), None)
