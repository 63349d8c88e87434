from copy import deepcopy
from typing import Any

import pytest

from switchboard.config.load import ConfigError, config_from_documents

POLICY: dict[str, Any] = {
    "apiVersion": "switchboard.dev/v1alpha1",
    "kind": "RoutingPolicy",
    "metadata": {"name": "p", "namespace": "shop"},
    "spec": {
        "providers": [{"name": "openai", "baseURL": "https://api.openai.com/v1", "region": "us"}],
        "models": [
            {"name": "big", "provider": "openai", "price": {"inputPerMTok": 5}},
            {"name": "small", "provider": "openai", "price": {"inputPerMTok": 1}},
        ],
        "routes": [{"name": "default", "targets": [{"model": "big"}]}],
    },
}
BUDGET: dict[str, Any] = {
    "apiVersion": "switchboard.dev/v1alpha1",
    "kind": "FeatureBudget",
    "metadata": {"name": "b", "namespace": "shop"},
    "spec": {
        "feature": "f",
        "limitUSD": 500,
        "period": "weekly",
        "thresholds": [
            {"percent": 80, "action": "alert"},
            {"percent": 100, "action": "downgrade", "downgradeTo": "small"},
            {"percent": 120, "action": "block"},
        ],
    },
}


def problems(*docs: dict[str, Any]) -> list[str]:
    try:
        config_from_documents([(f"doc{i}", d) for i, d in enumerate(docs)])
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def with_spec(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = deepcopy(doc)
    out["spec"].update(changes)
    return out


def test_sound_policy_and_budget_have_no_problems() -> None:
    assert problems(POLICY, BUDGET) == []


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"limitUSD": -1}, "spec.limitUSD"),
        ({"period": "hourly"}, "spec.period"),
        (
            {
                "thresholds": [
                    {"percent": 100, "action": "block"},
                    {"percent": 80, "action": "alert"},
                ]
            },
            "spec.thresholds",
        ),
        (
            {"thresholds": [{"percent": 100, "action": "downgrade", "downgradeTo": "nope"}]},
            "spec.thresholds[0].downgradeTo",
        ),
        (
            {"thresholds": [{"percent": 100, "action": "downgrade"}]},
            "spec.thresholds[0].downgradeTo",
        ),
    ],
)
def test_bad_budget_is_rejected_with_its_field_path(changes: dict[str, Any], path: str) -> None:
    found = problems(POLICY, with_spec(BUDGET, **changes))
    assert any(f"FeatureBudget/b: {path}" in p for p in found), found


def test_unknown_references_are_named() -> None:
    spec = deepcopy(POLICY["spec"])
    spec["models"][0]["provider"] = "missing"
    spec["routes"][0]["fallback"] = [{"model": "ghost"}]
    found = problems(with_spec(POLICY, **spec))
    assert any("spec.models[0].provider: unknown provider 'missing'" in p for p in found)
    assert any("spec.routes[0].fallback[0].model: unknown model 'ghost'" in p for p in found)


def test_route_after_a_catch_all_is_unreachable() -> None:
    routes = [
        {"name": "all", "targets": [{"model": "big"}]},
        {"name": "late", "match": {"tasks": ["x"]}, "targets": [{"model": "small"}]},
    ]
    assert any("routes[1]: unreachable" in p for p in problems(with_spec(POLICY, routes=routes)))


def test_residency_to_an_untagged_region_is_rejected() -> None:
    found = problems(with_spec(POLICY, dataResidency={"eu": ["eu"]}))
    assert any("dataResidency.eu[0]" in p for p in found)


def test_exactly_one_policy_is_required() -> None:
    assert any("exactly one RoutingPolicy" in p for p in problems(BUDGET))
