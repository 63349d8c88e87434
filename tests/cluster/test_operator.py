"""The operator against the real control plane: policies rendered, kept, collected, shared."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.api import names
from switchboard.config.load import config_from_documents
from switchboard.config.render import config_hash, config_text
from switchboard.devcluster import LocalCluster
from tests.support.kubectl import apply, condition, get, ok, wait_for
from tests.support.operator import OperatorProcess

OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def namespace(switchboard_crds: LocalCluster) -> str:
    name = f"op-{uuid.uuid4().hex[:8]}"
    ok(switchboard_crds, "create", "namespace", name)
    return name


@pytest.fixture
def operators(
    switchboard_crds: LocalCluster, namespace: str, request: pytest.FixtureRequest
) -> Iterator[OperatorFactory]:
    """Start operators serving `namespace`: `operators("--standalone")`; all stop afterwards."""
    started: list[OperatorProcess] = []

    def start(*args: str, budget_interval: float = 1.0) -> OperatorProcess:
        process = OperatorProcess(
            switchboard_crds.kubeconfig, namespace, args=args, budget_interval=budget_interval
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        print(f"--- operator {process.argv[3:]} log ---\n{process.log()[-6000:]}")


def policy(namespace: str, name: str = "default", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": [{"name": "local", "baseURL": "http://127.0.0.1:9/v1", "region": "eu"}],
        "models": [
            {"name": "m", "provider": "local", "price": {"inputPerMTok": 1.23}},
            {"name": "gpt-4o-mini", "provider": "local"},
        ],
        "routes": [
            {
                "name": "mini",
                "match": {"requestedModels": ["gpt-4o-mini*"]},
                "targets": [{"model": "gpt-4o-mini"}],
            },
            {"name": "main", "targets": [{"model": "m"}]},
        ],
    }
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_ROUTING_POLICY,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**base, **spec},
    }


def budget(namespace: str, name: str, limit: float = 10, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_FEATURE_BUDGET,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"feature": name, "limitUSD": limit, "period": "daily", **spec},
    }


def rendered(kube: LocalCluster, namespace: str, name: str = "default") -> str | None:
    config_map = get(kube, namespace, "configmap", names.config_map_name(name))
    return None if config_map is None else config_map["data"][names.CONFIG_MAP_KEY]


def switchboard_render(tmp_path: Path, *documents: dict[str, Any]) -> str:
    """What `switchboard render` prints for these manifests."""
    path = tmp_path / f"render-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "render", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def ready_for(kube: LocalCluster, namespace: str, generation: int, name: str = "default") -> bool:
    found = get(kube, namespace, "routingpolicy", name)
    return (
        found is not None
        and condition(found, "Ready").get("observedGeneration") == generation
        and found["status"].get("observedGeneration") == generation
    )


def test_applied_policy_is_rendered_as_switchboard_render_prints_it_and_owned(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> None:
    kube = switchboard_crds
    operators("--standalone")
    documents = [policy(namespace), budget(namespace, "checkout")]
    apply(kube, *documents)

    text = switchboard_render(tmp_path, *documents)
    wait_for("the ConfigMap as rendered", lambda: rendered(kube, namespace) == text)
    found = get(kube, namespace, "routingpolicy", "default")
    assert found is not None
    ready = wait_for("Ready", lambda: condition(get(kube, namespace, "rp", "default"), "Ready"))
    assert (ready["status"], ready["reason"]) == ("True", "Rendered")
    status = get(kube, namespace, "rp", "default")["status"]  # type: ignore[index]
    assert status["configMap"] == "switchboard-default"
    assert status["configHash"] == config_hash(text)
    assert (status["routes"], status["observedGeneration"]) == (2, 1)
    config_map = get(kube, namespace, "configmap", "switchboard-default")
    assert config_map is not None
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "RoutingPolicy",
        "default",
        found["metadata"]["uid"],
        True,
    )


def test_updated_policy_and_budgets_rerender_the_configmap(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> None:
    kube = switchboard_crds
    operators("--standalone")
    first = policy(namespace)
    apply(kube, first)
    wait_for(
        "first render", lambda: rendered(kube, namespace) == switchboard_render(tmp_path, first)
    )

    second = policy(namespace, routes=[{"name": "only", "targets": [{"model": "m"}]}])
    apply(kube, second)
    expected = switchboard_render(tmp_path, second)
    wait_for("the update rendered", lambda: rendered(kube, namespace) == expected)
    wait_for("generation 2 observed", lambda: ready_for(kube, namespace, 2))

    checkout = budget(namespace, "checkout", thresholds=[{"percent": 50, "action": "alert"}])
    apply(kube, checkout)
    expected = switchboard_render(tmp_path, second, checkout)
    wait_for("a new budget re-renders the policy", lambda: rendered(kube, namespace) == expected)

    checkout["spec"]["limitUSD"] = 42.5
    apply(kube, checkout)
    expected = switchboard_render(tmp_path, second, checkout)
    wait_for("a changed budget re-renders it", lambda: rendered(kube, namespace) == expected)
    status = get(kube, namespace, "rp", "default")["status"]  # type: ignore[index]
    wait_for(
        "the policy's configHash follows",
        lambda: (
            get(kube, namespace, "rp", "default")["status"]["configHash"]  # type: ignore[index]
            == config_hash(expected)
        ),
    )
    assert status["observedGeneration"] == 2

    ok(kube, "-n", namespace, "delete", "featurebudget", "checkout")
    expected = switchboard_render(tmp_path, second)
    wait_for("a deleted budget leaves the config", lambda: rendered(kube, namespace) == expected)
    wait_for("the budget is gone", lambda: get(kube, namespace, "fb", "checkout") is None)


def test_invalid_policy_gets_the_reason_and_keeps_the_last_good_configmap(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> None:
    kube = switchboard_crds
    operators("--standalone")
    good = policy(namespace)
    apply(kube, good)
    expected = switchboard_render(tmp_path, good)
    wait_for("rendered", lambda: rendered(kube, namespace) == expected)

    broken = policy(namespace, routes=[{"name": "main", "targets": [{"model": "gpt-5"}]}])
    apply(kube, broken)
    wait_for("generation 2 observed", lambda: ready_for(kube, namespace, 2))
    found = get(kube, namespace, "rp", "default")
    ready = condition(found, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Invalid")
    assert "spec.routes[0].targets[0].model: unknown model 'gpt-5'" in ready["message"]
    assert found is not None and found["status"]["configHash"] == config_hash(expected)
    assert rendered(kube, namespace) == expected

    unpriced = policy(
        namespace,
        "unpriced",
        models=[{"name": "homegrown", "provider": "local"}],
        routes=[{"name": "main", "targets": [{"model": "homegrown"}]}],
    )
    apply(kube, unpriced)
    wait_for("Invalid", lambda: condition(get(kube, namespace, "rp", "unpriced"), "Ready"))
    ready = condition(get(kube, namespace, "rp", "unpriced"), "Ready")
    assert ready["reason"] == "Invalid" and "not in the genai-prices catalog" in ready["message"]
    assert rendered(kube, namespace, "unpriced") is None

    apply(kube, good)
    wait_for(
        "fixed again",
        lambda: condition(get(kube, namespace, "rp", "default"), "Ready").get("status") == "True",
    )


def count_rendered(kube: LocalCluster, namespace: str) -> int:
    names_ = ok(kube, "-n", namespace, "get", "configmap", "-l", names.LABEL_POLICY, "-o", "name")
    return len(names_.split())


def count_ready(kube: LocalCluster, namespace: str) -> int:
    policies = get(kube, namespace, "routingpolicies") or {}
    return sum(condition(p, "Ready").get("status") == "True" for p in policies.get("items", []))


def test_operator_killed_mid_reconcile_converges_after_a_restart(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory
) -> None:
    kube = switchboard_crds
    count = 60
    documents = [policy(namespace, f"p{i}") for i in range(count)]
    documents.append(budget(namespace, "shared"))
    ok(kube, "create", "-f", "-", input=yaml.safe_dump_all(documents))  # faster than apply
    first = operators("--standalone")
    wait_for("a first ConfigMap", lambda: count_rendered(kube, namespace) > 0)
    first.stop(signal.SIGKILL)
    # Killed with work left: some policies not rendered yet, or rendered without their status.
    assert count_ready(kube, namespace) < count

    operators("--standalone")
    expected = {  # what `switchboard render` prints, rendered in-process (60 CLI runs are slow)
        f"p{i}": config_text(config_from_documents([("p", documents[i]), ("b", documents[-1])]))
        for i in range(count)
    }
    wait_for("every policy ready", lambda: count_ready(kube, namespace) == count)
    config_maps = (get(kube, namespace, "configmaps", "-l", names.LABEL_POLICY) or {})["items"]
    assert {
        c["metadata"]["labels"][names.LABEL_POLICY]: c["data"][names.CONFIG_MAP_KEY]
        for c in config_maps
    } == expected
    for found in (get(kube, namespace, "routingpolicies") or {})["items"]:
        assert found["status"]["observedGeneration"] == 1
        assert found["status"]["configHash"] == config_hash(expected[found["metadata"]["name"]])


def test_two_operators_with_peering_only_one_acts_until_it_stops(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory
) -> None:
    kube = switchboard_crds
    first = operators()
    wait_for("the peering object", lambda: get(kube, namespace, "kopfpeering", "switchboard"))
    second = operators()

    def peers() -> int:
        peering = get(kube, namespace, "kopfpeering", "switchboard") or {}
        return len(peering.get("status") or {})

    wait_for("both replicas in the peering object", lambda: peers() == 2)
    apply(kube, policy(namespace, "one"), budget(namespace, "b"))
    wait_for("rendered", lambda: rendered(kube, namespace, "one"))
    wait_for("budget status", lambda: (get(kube, namespace, "fb", "b") or {}).get("status"))
    reconciles = "switchboard_operator_reconciles_total"
    assert first.metric(reconciles) > 0
    assert second.metric(reconciles) == 0
    assert "Resuming operations" not in second.log()

    first.stop(signal.SIGTERM)
    apply(kube, policy(namespace, "two"))
    wait_for("the second takes over", lambda: rendered(kube, namespace, "two"), timeout=30)
    assert second.metric(reconciles, kind="RoutingPolicy") > 0


# Last in the file: the garbage collector needs time to discover the freshly installed CRDs.
def test_deleted_policy_takes_its_configmap_with_it(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory
) -> None:
    kube = switchboard_crds
    if not kube.has_controller_manager:
        pytest.skip("no kube-controller-manager binary (its garbage collector deletes)")
    operators("--standalone")
    apply(kube, policy(namespace), policy(namespace, "other"))
    wait_for(
        "both rendered", lambda: rendered(kube, namespace) and rendered(kube, namespace, "other")
    )

    ok(kube, "-n", namespace, "delete", "routingpolicy", "default")
    # The garbage collector learns of a new CRD by discovery, which it refreshes every 30 s.
    wait_for("the ConfigMap is collected", lambda: rendered(kube, namespace) is None, 75)
    assert rendered(kube, namespace, "other") is not None


def test_api_server_restart_is_ridden_out_and_later_changes_are_rendered(
    switchboard_crds: LocalCluster, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> None:
    kube = switchboard_crds
    operator = operators("--standalone")
    first = policy(namespace)
    apply(kube, first)
    text = switchboard_render(tmp_path, first)
    wait_for("first render", lambda: rendered(kube, namespace) == text)

    kube.restart_apiserver()  # every watch and connection of the operator breaks

    second = policy(namespace, routes=[{"name": "only", "targets": [{"model": "m"}]}])
    apply(kube, second)
    expected = switchboard_render(tmp_path, second)
    wait_for("render after the restart", lambda: rendered(kube, namespace) == expected, 60)
    wait_for("status of generation 2", lambda: ready_for(kube, namespace, 2), 30)
    assert operator.alive()
