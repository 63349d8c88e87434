"""reconcile: RoutingPolicy + FeatureBudgets -> the ConfigMap `switchboard render` would print."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from switchboard.api import names
from switchboard.config.load import config_from_documents
from switchboard.config.render import config_hash, config_text
from switchboard.operator.reconcile import PolicyOutcome, policy_outcome, status_json
from switchboard.pricing.cost import UnitPrice

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CATALOG = {"gpt-4o": UnitPrice(Decimal("2.5"), Decimal(10), Decimal("1.25"))}


def catalog(model: str, provider: str | None) -> UnitPrice | None:
    return CATALOG.get(model)


POLICY: dict[str, Any] = {
    "apiVersion": "switchboard.dev/v1alpha1",
    "kind": "RoutingPolicy",
    "metadata": {"name": "default", "namespace": "shop", "generation": 3, "uid": "u-1"},
    "spec": {
        "providers": [{"name": "openai", "baseURL": "https://api.openai.com/v1"}],
        "models": [
            {"name": "gpt-4o", "provider": "openai"},
            {"name": "small", "provider": "openai", "price": {"inputPerMTok": "0.15"}},
        ],
        "routes": [
            {
                "name": "cheap",
                "match": {"requestedModels": ["gpt-4o-mini*"]},
                "targets": [{"model": "small"}],
            },
            {"name": "default", "targets": [{"model": "gpt-4o"}]},
        ],
    },
}


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": {"name": name, "namespace": "shop", "generation": 1},
        "spec": {"feature": name, "limitUSD": 10, "period": "daily", **spec},
    }


def outcome(policy: dict[str, Any], *budgets: dict[str, Any], now: datetime = NOW) -> PolicyOutcome:
    return policy_outcome(policy, budgets, price_lookup=catalog, now=now)


def ready(result: PolicyOutcome) -> dict[str, Any]:
    (condition,) = [c for c in result.status["conditions"] if c["type"] == "Ready"]
    return dict(condition)


def with_spec(**changes: Any) -> dict[str, Any]:
    policy = deepcopy(POLICY)
    policy["spec"].update(changes)
    return policy


def test_valid_policy_renders_what_switchboard_render_prints() -> None:
    budgets = [budget("zeta"), budget("alpha", thresholds=[{"percent": 80, "action": "alert"}])]
    result = outcome(POLICY, *budgets)
    documents = [("policy", POLICY), *[(b["metadata"]["name"], b) for b in budgets]]
    expected = config_text(config_from_documents(documents))
    assert result.config_map is not None
    assert result.config_map["data"] == {names.CONFIG_MAP_KEY: expected}
    assert expected.index("name: alpha") < expected.index("name: zeta")


def test_config_map_is_named_labelled_and_hashed_after_the_policy() -> None:
    result = outcome(POLICY)
    assert result.config_map is not None
    meta = result.config_map["metadata"]
    text = result.config_map["data"][names.CONFIG_MAP_KEY]
    assert (meta["name"], meta["namespace"]) == ("switchboard-default", "shop")
    assert meta["labels"][names.LABEL_POLICY] == "default"
    assert meta["annotations"][names.ANNOTATION_CONFIG_HASH] == config_hash(text)


def test_valid_policy_status_is_ready_with_hash_routes_and_generation() -> None:
    result = outcome(POLICY, budget("b"))
    assert result.config_map is not None
    status = result.status
    assert status["configMap"] == "switchboard-default"
    assert status["configHash"] == config_hash(result.config_map["data"][names.CONFIG_MAP_KEY])
    assert (status["routes"], status["observedGeneration"]) == (2, 3)
    assert ready(result) == {
        "type": "Ready",
        "status": "True",
        "reason": "Rendered",
        "message": "rendered 2 route(s) and 1 FeatureBudget(s) into ConfigMap switchboard-default",
        "lastTransitionTime": "2026-11-25T12:00:00Z",
        "observedGeneration": 3,
    }


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"models": [{"name": "gpt-4o", "provider": "azure"}]},
            "spec.models[0].provider",
            "unknown provider 'azure'",
        ),
        (
            {"routes": [{"name": "default", "targets": [{"model": "gpt-5"}]}]},
            "spec.routes[0].targets[0].model",
            "unknown model 'gpt-5'",
        ),
        (
            {
                "models": [{"name": "homegrown-llm", "provider": "openai"}],
                "routes": [{"name": "default", "targets": [{"model": "homegrown-llm"}]}],
            },
            "spec.models[0].price",
            "'homegrown-llm' is not in the genai-prices catalog; set price",
        ),
        (
            {
                "routes": [
                    {"name": "a", "targets": [{"model": "gpt-4o"}]},
                    {"name": "a", "targets": [{"model": "small"}]},
                ]
            },
            "spec.routes",
            "route 'a' is defined twice",
        ),
        (
            {
                "routes": [
                    {
                        "name": "w",
                        "strategy": "weighted",
                        "targets": [{"model": "small", "weight": 0}],
                    }
                ]
            },
            "spec.routes[0].targets",
            "weighted strategy needs a positive weight",
        ),
        ({"routes": []}, "spec.routes", "List should have at least 1 item"),
        ({"providers": [{"name": "x", "baseURL": "ftp://nope"}]}, "spec.providers[0].baseURL", ""),
    ],
)
def test_semantically_invalid_policy_is_invalid_with_the_path_and_reason(
    change: dict[str, Any], path: str, words: str
) -> None:
    result = outcome(with_spec(**change))
    assert result.config_map is None
    assert not result.valid
    condition = ready(result)
    assert (condition["status"], condition["reason"]) == ("False", "Invalid")
    assert f"{path}: {words}" in condition["message"]
    assert "the last good config stays" in condition["message"]


def test_invalid_update_keeps_the_last_good_config_in_status() -> None:
    good = outcome(POLICY)
    broken = with_spec(routes=[{"name": "default", "targets": [{"model": "gone"}]}])
    broken["metadata"]["generation"] = 4
    broken["status"] = good.status
    result = outcome(broken, now=NOW + timedelta(minutes=5))
    assert result.config_map is None
    for key in ("configMap", "configHash", "routes"):
        assert result.status[key] == good.status[key]
    assert result.status["observedGeneration"] == 4
    assert ready(result)["lastTransitionTime"] == "2026-11-25T12:05:00Z"


def test_transition_time_moves_only_when_the_condition_status_changes() -> None:
    first = outcome(POLICY)
    again = deepcopy(POLICY)
    again["status"] = first.status
    later = outcome(again, budget("new"), now=NOW + timedelta(hours=1))
    assert ready(later)["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert "1 FeatureBudget(s)" in ready(later)["message"]


def test_budget_that_does_not_fit_the_policy_is_left_out_and_named() -> None:
    misfit = budget(
        "misfit",
        thresholds=[{"percent": 100, "action": "downgrade", "downgradeTo": "gpt-9"}],
    )
    result = outcome(POLICY, budget("fine"), misfit)
    assert result.valid and result.config_map is not None
    text = result.config_map["data"][names.CONFIG_MAP_KEY]
    assert "name: fine" in text and "misfit" not in text
    assert (
        "FeatureBudget(s) left out: FeatureBudget misfit: spec.thresholds[0].downgradeTo: "
        "unknown model or route 'gpt-9'" in ready(result)["message"]
    )


def test_unreadable_status_is_replaced_not_a_crash() -> None:
    policy = deepcopy(POLICY)
    policy["status"] = {"conditions": "garbage", "kopf": {"progress": {}}}
    assert ready(outcome(policy))["status"] == "True"


def test_long_problem_lists_are_cut_in_the_message() -> None:
    models = [{"name": f"m{i}", "provider": f"nowhere-{i}"} for i in range(200)]
    result = outcome(with_spec(models=models))
    message = ready(result)["message"]
    assert len(message) < 1600 and message.endswith("more characters)")
    assert len(result.problems) == 200 + 2  # every model, and both route targets


def test_status_json_writes_decimals_as_numbers() -> None:
    from switchboard.api.v1alpha1 import AlertSent, FeatureBudgetStatus

    status = FeatureBudgetStatus(
        alerts_sent=[
            AlertSent(period_start="p", percent=Decimal("80"), action="alert", at="t"),
            AlertSent(period_start="p", percent=Decimal("33.5"), action="alert", at="t"),
        ]
    )
    assert [a["percent"] for a in status_json(status)["alertsSent"]] == [80, 33.5]


def test_unmetered_pod_count_replaces_the_stored_one_only_when_given() -> None:
    stored = {**POLICY, "status": {"unmeteredPods": 4}}
    assert outcome(stored).status["unmeteredPods"] == 4
    counted = policy_outcome(stored, (), price_lookup=catalog, now=NOW, unmetered_pods=0)
    assert counted.status["unmeteredPods"] == 0
