from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from switchboard.config.runtime import RouteRuntime
from switchboard.routing.match import RequestFacts, match_route

Matcher = Callable[..., RouteRuntime | None]


@pytest.fixture
def matched(runtime_for: Callable[..., Any], route_spec_for: Callable[..., Any]) -> Matcher:
    """`matched(match, facts)`: the route taken when one route has `match`, before a default."""

    def run(match: dict[str, Any] | None, facts: RequestFacts) -> RouteRuntime | None:
        runtime = runtime_for([route_spec_for("conditioned", ["gpt-4o"], match=match)])
        return match_route(runtime.routes, facts)

    return run


def name_of(route: RouteRuntime | None) -> str | None:
    return None if route is None else route.name


def test_route_without_match_matches_everything(matched: Matcher, facts: RequestFacts) -> None:
    assert name_of(matched(None, facts)) == "conditioned"


def test_no_route_matching_returns_none(matched: Matcher, facts: RequestFacts) -> None:
    assert matched({"features": ["search"]}, facts) is None


def test_no_routes_returns_none(facts: RequestFacts) -> None:
    assert match_route([], facts) is None


def test_several_matching_routes_first_wins(
    runtime_for: Callable[..., Any], route_spec_for: Callable[..., Any], facts: RequestFacts
) -> None:
    runtime = runtime_for(
        [
            route_spec_for("search", ["gpt-4o"], match={"features": ["search"]}),
            route_spec_for("first", ["gpt-4o"], match={"features": ["checkout"]}),
            route_spec_for("second", ["gpt-4o"], match={"features": ["checkout"]}),
            route_spec_for("default", ["gpt-4o"]),
        ]
    )
    assert name_of(match_route(runtime.routes, facts)) == "first"


def test_unmatched_request_falls_to_default_route(
    runtime_for: Callable[..., Any], route_spec_for: Callable[..., Any], facts: RequestFacts
) -> None:
    runtime = runtime_for(
        [
            route_spec_for("search", ["gpt-4o"], match={"features": ["search"]}),
            route_spec_for("default", ["gpt-4o"]),
        ]
    )
    assert name_of(match_route(runtime.routes, facts)) == "default"


@pytest.mark.parametrize(
    ("match", "changes", "expected"),
    [
        ({"features": ["search", "checkout"]}, {}, True),
        ({"features": ["search"]}, {}, False),
        ({"teams": ["growth"]}, {"team": "growth"}, True),
        ({"teams": ["growth"]}, {"team": "payments"}, False),
        ({"teams": ["growth"]}, {"team": None}, False),
        ({"tasks": ["classification", "extraction"]}, {"task": "extraction"}, True),
        ({"tasks": ["classification"]}, {"task": "chat"}, False),
        ({"tasks": ["classification"]}, {"task": None}, False),
        ({"trafficClass": ["realtime"]}, {"traffic_class": "realtime"}, True),
        ({"trafficClass": ["realtime"]}, {"traffic_class": "batch"}, False),
        ({"trafficClass": ["realtime"]}, {"traffic_class": None}, False),
        ({"regions": ["eu"]}, {"region": "eu"}, True),
        ({"regions": ["eu"]}, {"region": "us"}, False),
        ({"regions": ["eu"]}, {"region": None}, False),
    ],
)
def test_list_condition_matches_listed_values_only(
    matched: Matcher,
    facts: RequestFacts,
    match: dict[str, Any],
    changes: dict[str, Any],
    expected: bool,
) -> None:
    assert (matched(match, replace(facts, **changes)) is not None) is expected


@pytest.mark.parametrize(
    "changes",
    [
        {"team": None},
        {"task": None},
        {"traffic_class": None},
        {"region": None},
        {"team": "growth", "task": "chat", "traffic_class": "batch", "region": "eu"},
    ],
)
def test_route_without_condition_matches_any_value(
    matched: Matcher, facts: RequestFacts, changes: dict[str, Any]
) -> None:
    assert matched({"features": ["checkout"]}, replace(facts, **changes)) is not None


def test_empty_condition_list_matches_anything(matched: Matcher, facts: RequestFacts) -> None:
    assert matched({"features": [], "requestedModels": []}, facts) is not None


@pytest.mark.parametrize(
    ("globs", "requested", "expected"),
    [
        (["gpt-4*"], "gpt-4o-mini", True),
        (["gpt-4*"], "gpt-3.5-turbo", False),
        (["gpt-4*"], "my-gpt-4o", False),
        (["gpt-4o"], "gpt-4o-mini", False),
        (["claude-*", "gpt-4o"], "gpt-4o", True),
        (["claude-*", "gpt-4o"], "claude-3-haiku", True),
        (["gpt-?o"], "gpt-4o", True),
    ],
)
def test_requested_model_glob_matches_whole_name(
    matched: Matcher, facts: RequestFacts, globs: list[str], requested: str, expected: bool
) -> None:
    result = matched({"requestedModels": globs}, replace(facts, requested_model=requested))
    assert (result is not None) is expected


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(99, False), (100, True), (150, True), (200, True), (201, False)],
)
def test_prompt_token_bounds_are_inclusive(
    matched: Matcher, facts: RequestFacts, tokens: int, expected: bool
) -> None:
    match = {"minPromptTokens": 100, "maxPromptTokens": 200}
    assert (matched(match, replace(facts, prompt_tokens=tokens)) is not None) is expected


def test_only_max_prompt_tokens_admits_short_prompts(matched: Matcher, facts: RequestFacts) -> None:
    assert matched({"maxPromptTokens": 2000}, replace(facts, prompt_tokens=0)) is not None
    assert matched({"maxPromptTokens": 2000}, replace(facts, prompt_tokens=2001)) is None


def test_only_min_prompt_tokens_admits_long_prompts(matched: Matcher, facts: RequestFacts) -> None:
    assert matched({"minPromptTokens": 2000}, replace(facts, prompt_tokens=10**6)) is not None
    assert matched({"minPromptTokens": 2000}, replace(facts, prompt_tokens=1999)) is None


ALL_CONDITIONS: dict[str, Any] = {
    "features": ["checkout"],
    "teams": ["growth"],
    "tasks": ["classification"],
    "requestedModels": ["gpt-4*"],
    "trafficClass": ["realtime"],
    "regions": ["eu"],
    "minPromptTokens": 10,
    "maxPromptTokens": 2000,
}
MATCHING: dict[str, Any] = {
    "team": "growth",
    "task": "classification",
    "traffic_class": "realtime",
    "region": "eu",
}


def test_every_condition_holding_matches(matched: Matcher, facts: RequestFacts) -> None:
    assert matched(ALL_CONDITIONS, replace(facts, **MATCHING)) is not None


@pytest.mark.parametrize(
    "spoiler",
    [
        {"feature": "search"},
        {"team": "payments"},
        {"task": "chat"},
        {"requested_model": "mistral-small"},
        {"traffic_class": "batch"},
        {"region": "us"},
        {"prompt_tokens": 5},
        {"prompt_tokens": 5000},
    ],
)
def test_one_condition_failing_does_not_match(
    matched: Matcher, facts: RequestFacts, spoiler: dict[str, Any]
) -> None:
    assert matched(ALL_CONDITIONS, replace(facts, **MATCHING | spoiler)) is None
