"""The generated CRDs on the real API server: accepted, validating, defaulting, printing."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from switchboard.api.v1alpha1 import (
    AlertSent,
    Condition,
    FeatureBudget,
    FeatureBudgetStatus,
    ModelSpend,
    RoutingPolicy,
    RoutingPolicyStatus,
)
from switchboard.devcluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = {"RoutingPolicy": RoutingPolicy, "FeatureBudget": FeatureBudget}
Doc = dict[str, Any]


def ok(kube: LocalCluster, *args: str, input: str | None = None) -> str:
    result = kube.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def namespace(kube: LocalCluster, name: str) -> str:
    ok(
        kube,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    return name


def manifests() -> list[Path]:
    """Files of examples/ holding Switchboard resources (Helm values files may sit there too)."""
    return [
        path
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        if any(doc and doc.get("kind") in KINDS for doc in yaml.safe_load_all(path.read_text()))
    ]


def example(name: str, ns: str) -> Doc:
    doc: Doc = yaml.safe_load((EXAMPLES / name).read_text())
    doc["metadata"]["namespace"] = ns
    return doc


def table(output: str) -> list[list[str]]:
    """`kubectl get` output as rows of cells (cells are separated by two spaces or more)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def status_json(status: BaseModel) -> str:
    """A status as the operator writes it: the pydantic model dumped to JSON."""
    return json.dumps({"status": status.model_dump(mode="json", by_alias=True, exclude_none=True)})


@pytest.fixture
def shop(switchboard_crds: LocalCluster) -> Iterator[LocalCluster]:
    """Namespace `shop`; the examples applied there are deleted afterwards."""
    namespace(switchboard_crds, "shop")
    yield switchboard_crds
    for path in manifests():
        switchboard_crds.kubectl("delete", "--ignore-not-found", "-f", str(path))


def test_crds_are_established_under_their_names(switchboard_crds: LocalCluster) -> None:
    for crd, short in (("routingpolicies", "rp"), ("featurebudgets", "fb")):
        established = ok(
            switchboard_crds,
            "get",
            f"crd/{crd}.switchboard.dev",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}'
            " {.status.acceptedNames.shortNames[0]}",
        )
        assert established == f"True {short}"
    eventually(switchboard_crds, "get", "switchboard", "-A")  # a category for both kinds


def test_kubectl_apply_of_the_examples_directory_succeeds(shop: LocalCluster) -> None:
    """The README's `kubectl apply -f examples/`: every top-level file is a manifest."""
    applied = ok(shop, "apply", "-f", str(EXAMPLES))
    assert "routingpolicy.switchboard.dev/" in applied
    assert "featurebudget.switchboard.dev/" in applied


def test_examples_apply_and_the_server_stores_what_pydantic_reads(shop: LocalCluster) -> None:
    paths = manifests()
    assert {p.name for p in paths} >= {"routingpolicy.yaml", "featurebudget.yaml", "policy.yaml"}
    for path in paths:
        ok(shop, "apply", "-f", str(path))
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            model = KINDS[doc["kind"]]
            stored = json.loads(
                ok(
                    shop,
                    "-n",
                    "shop",
                    "get",
                    f"{doc['kind']}/{doc['metadata']['name']}",
                    "-o",
                    "json",
                )
            )
            # The API server's defaults are pydantic's: the stored object means the same.
            assert model.model_validate(stored).spec == model.model_validate(doc).spec, path


def test_server_applies_the_models_defaults(switchboard_crds: LocalCluster) -> None:
    ns = namespace(switchboard_crds, "sb-crd-defaults")
    minimal = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "minimal", "namespace": ns},
        "spec": {
            "providers": [{"name": "openai", "baseURL": "https://api.openai.com/v1"}],
            "models": [{"name": "gpt-4o-mini", "provider": "openai"}],
            "routes": [{"name": "default", "targets": [{"model": "gpt-4o-mini"}]}],
        },
    }
    ok(switchboard_crds, "apply", "-f", "-", input=json.dumps(minimal))
    stored = json.loads(ok(switchboard_crds, "-n", ns, "get", "rp/minimal", "-o", "json"))
    route = stored["spec"]["routes"][0]
    assert route["strategy"] == "fixed"
    assert route["targets"] == [{"model": "gpt-4o-mini", "weight": 1}]
    assert route["retry"] == {"attempts": 2, "backoffMs": 200, "maxBackoffMs": 5000}
    assert stored["spec"]["providers"][0]["timeoutSeconds"] == 60
    assert stored["spec"]["telemetry"] == {"captureContent": False}
    assert RoutingPolicy.model_validate(stored) == RoutingPolicy.model_validate(
        {**stored, "spec": minimal["spec"]}
    )


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation: set the field at a dotted path (`spec.routes.0.strategy`); None deletes it."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is None:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _twice(list_path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        items = doc["spec"][list_path]
        items.append(copy.deepcopy(items[0]))

    return mutate


POLICY, BUDGET = "routingpolicy.yaml", "featurebudget.yaml"
REJECTED = {
    "strategy-bogus": (
        POLICY,
        _set("spec.routes.0.strategy", "bogus"),
        "spec.routes[0].strategy",
        'Unsupported value: "bogus"',
    ),
    "unknown-field": (
        POLICY,
        _set("spec.routes.0.stratgy", "cheapest"),
        "",
        'unknown field "spec.routes[0].stratgy"',
    ),
    "route-without-targets": (
        POLICY,
        _set("spec.routes.0.targets", None),
        "spec.routes[0].targets",
        "Required value",
    ),
    "base-url-not-http": (
        POLICY,
        _set("spec.providers.0.baseURL", "api.openai.com/v1"),
        "spec.providers[0].baseURL",
        "should match",
    ),
    "api-key-both-sources": (
        POLICY,
        _set("spec.providers.1.apiKey.env", "DEEPSEEK_KEY"),
        "spec.providers[1].apiKey",
        "set exactly one of secretKeyRef or env",
    ),
    "api-key-no-source": (
        POLICY,
        _set("spec.providers.1.apiKey", {}),
        "spec.providers[1].apiKey",
        "set exactly one of secretKeyRef or env",
    ),
    "provider-twice": (
        POLICY,
        _twice("providers"),
        "spec.providers",
        "provider names must be unique",
    ),
    "model-twice": (POLICY, _twice("models"), "spec.models", "model names must be unique"),
    "route-twice": (POLICY, _twice("routes"), "spec.routes", "route names must be unique"),
    "weighted-without-weight": (
        POLICY,
        _set("spec.routes.2.targets", [{"model": "deepseek-chat", "weight": 0}]),
        "spec.routes[2].targets",
        "weighted strategy needs a positive weight",
    ),
    "prompt-bounds-crossed": (
        POLICY,
        _set("spec.routes.3.match.minPromptTokens", 5000),
        "spec.routes[3].match.minPromptTokens",
        "must be at most maxPromptTokens",
    ),
    "limit-negative": (
        BUDGET,
        _set("spec.limitUSD", -1),
        "spec.limitUSD",
        "greater than or equal to 0",
    ),
    "period-hourly": (BUDGET, _set("spec.period", "hourly"), "spec.period", "Unsupported value"),
    "thresholds-out-of-order": (
        BUDGET,
        _set("spec.thresholds.0.percent", 110),
        "spec.thresholds",
        "percents must be strictly ascending",
    ),
    "thresholds-same-percent": (
        BUDGET,
        _set("spec.thresholds.0.percent", 100),
        "spec.thresholds",
        "percents must be strictly ascending",
    ),
    "downgrade-without-target": (
        BUDGET,
        _set("spec.thresholds.1.downgradeTo", None),
        "spec.thresholds[1].downgradeTo",
        "downgrade needs downgradeTo",
    ),
    "alert-with-target": (
        BUDGET,
        _set("spec.thresholds.0.downgradeTo", "gpt-4o-mini"),
        "spec.thresholds[0].downgradeTo",
        "only a downgrade takes downgradeTo",
    ),
    "too-many-thresholds": (
        BUDGET,
        _set("spec.thresholds", [{"percent": p, "action": "alert"} for p in range(1, 18)]),
        "spec.thresholds",
        "must have at most 16 items",
    ),
}


def dry_run(kube: LocalCluster, doc: Doc) -> tuple[int, str]:
    result = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc))
    return result.returncode, result.stderr


@pytest.mark.parametrize("base", [POLICY, BUDGET])
def test_unchanged_examples_pass_the_dry_run_the_rejections_start_from(
    switchboard_crds: LocalCluster, base: str
) -> None:
    ns = namespace(switchboard_crds, "sb-crd-reject")
    assert dry_run(switchboard_crds, example(base, ns)) == (0, "")


@pytest.mark.parametrize(("base", "mutate", "path", "message"), REJECTED.values(), ids=REJECTED)
def test_schema_error_is_rejected_naming_the_field(
    switchboard_crds: LocalCluster,
    base: str,
    mutate: Callable[[Doc], None],
    path: str,
    message: str,
) -> None:
    doc = example(base, namespace(switchboard_crds, "sb-crd-reject"))
    mutate(doc)
    code, stderr = dry_run(switchboard_crds, doc)
    assert code != 0
    lines = [line for line in stderr.splitlines() if message in line]
    assert lines, f"no {message!r} in:\n{stderr}"
    assert not path or any(f"{path}: " in line for line in lines), stderr


def eventually(kube: LocalCluster, *args: str) -> str:
    """kubectl that succeeds once discovery and OpenAPI catch up with a new CRD (a moment)."""
    deadline = time.monotonic() + 30
    while (result := kube.kubectl(*args)).returncode != 0:
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)
    return result.stdout


def explain(kube: LocalCluster, field: str) -> str:
    return eventually(kube, "explain", field)


def test_kubectl_explain_shows_the_models_descriptions(switchboard_crds: LocalCluster) -> None:
    routes = explain(switchboard_crds, "routingpolicy.spec.routes")
    assert "First match wins." in routes
    assert "strategy\t<string>" in routes and "How targets are ordered." in routes
    match = explain(switchboard_crds, "routingpolicy.spec.routes.match")
    assert "a list matches any of its items" in match
    assert "X-Switchboard-Task values." in match
    percent = explain(switchboard_crds, "featurebudget.spec.thresholds.percent")
    assert "<number>" in percent and "Share of limitUSD, in percent." in percent
    status = explain(switchboard_crds, "featurebudget.status.state")
    assert "Ok, Warning (an alert fired), Downgraded or Blocked." in status


def test_featurebudget_status_is_accepted_and_printed(switchboard_crds: LocalCluster) -> None:
    ns = namespace(switchboard_crds, "sb-crd-print")
    ok(switchboard_crds, "apply", "-f", "-", input=json.dumps(example(BUDGET, ns)))
    status = FeatureBudgetStatus(
        conditions=[
            Condition(
                type="Current",
                status="True",
                reason="LedgerRead",
                last_transition_time="2026-01-05T00:00:00Z",
            )
        ],
        observed_generation=1,
        period_start="2026-01-05T00:00:00Z",
        period_end="2026-01-12T00:00:00Z",
        spent_usd="412.17",
        remaining_usd="87.83",
        percent_used=82.4,
        state="Warning",
        by_model=[
            ModelSpend(
                team="customer-care",
                provider="openai",
                model="gpt-4o-mini",
                spent_usd="412.17",
                requests=1200,
            )
        ],
        alerts_sent=[
            AlertSent(
                period_start="2026-01-05T00:00:00Z",
                percent=80,
                action="alert",
                at="2026-01-09T10:00:00Z",
            )
        ],
    )
    patch = ("-n", ns, "patch", "fb/support-classifier", "--subresource=status", "--type=merge")
    ok(switchboard_crds, *patch, "-p", status_json(status))

    stored = json.loads(
        ok(switchboard_crds, "-n", ns, "get", "fb/support-classifier", "-o", "json")
    )
    assert FeatureBudgetStatus.model_validate(stored["status"]) == status
    header, row = table(ok(switchboard_crds, "-n", ns, "get", "featurebudgets"))
    assert header == ["NAME", "FEATURE", "SPENT", "LIMIT", "PERCENT", "STATE", "AGE"]
    assert row[:-1] == [
        "support-classifier",
        "support-classifier",
        "412.17",
        "500",
        "82.4",
        "Warning",
    ]
    wide_header, _ = table(ok(switchboard_crds, "-n", ns, "get", "fb", "-o", "wide"))
    assert wide_header[2:4] == ["TEAM", "PERIOD"]


def test_routingpolicy_status_is_accepted_and_printed(switchboard_crds: LocalCluster) -> None:
    ns = namespace(switchboard_crds, "sb-crd-print")
    ok(switchboard_crds, "apply", "-f", "-", input=json.dumps(example(POLICY, ns)))
    header, row = table(ok(switchboard_crds, "-n", ns, "get", "routingpolicies"))
    assert header == ["NAME", "ROUTES", "READY", "UNMETERED", "AGE"]
    assert row[0] == "default" and len(row) == 2  # no status yet: empty Routes, Ready, Unmetered

    ready = Condition(
        type="Ready",
        status="True",
        reason="Rendered",
        message="6 routes",
        last_transition_time="2026-01-05T00:00:00Z",
        observed_generation=1,
    )
    status = RoutingPolicyStatus(
        conditions=[ready],
        observed_generation=1,
        config_map="switchboard-default",
        config_hash="0123abcd",
        routes=6,
        unmetered_pods=2,
    )
    patch = ("-n", ns, "patch", "rp/default", "--subresource=status", "--type=merge")
    ok(switchboard_crds, *patch, "-p", status_json(status))

    header, row = table(ok(switchboard_crds, "-n", ns, "get", "rp"))
    assert row[:-1] == ["default", "6", "True", "2"]
    wide_header, wide_row = table(ok(switchboard_crds, "-n", ns, "get", "rp", "-o", "wide"))
    assert wide_header == ["NAME", "ROUTES", "READY", "REASON", "CONFIGMAP", "UNMETERED", "AGE"]
    assert wide_row[3:6] == ["Rendered", "switchboard-default", "2"]
    stored = json.loads(ok(switchboard_crds, "-n", ns, "get", "rp/default", "-o", "json"))
    assert RoutingPolicyStatus.model_validate(stored["status"]) == status


def test_status_is_a_subresource_that_spec_writes_cannot_touch(
    switchboard_crds: LocalCluster,
) -> None:
    ns = namespace(switchboard_crds, "sb-crd-subresource")
    doc = example(BUDGET, ns)
    doc["status"] = {"state": "Blocked"}
    ok(switchboard_crds, "apply", "-f", "-", input=json.dumps(doc))
    get = ("-n", ns, "get", "fb/support-classifier", "-o", "jsonpath={.status}")
    assert ok(switchboard_crds, *get) == ""
