"""The Helm chart (helm/switchboard) as `helm lint` and `helm template` see it.

Golden files: tests/golden/helm/<case>.in.yaml (values) -> <case>.out.yaml, and each
examples/values-<name>.yaml -> example-<name>.out.yaml; `pytest --update-golden` rewrites them.
Generated certificate material is random, so it is replaced by a marker before comparing; CRDs
and the Grafana dashboard are compared with crds/ and dashboards/ instead of being repeated.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from switchboard.api import names
from switchboard.cli import parser
from switchboard.config.model import InjectorSettings
from switchboard.operator import podpatch
from switchboard.operator.metrics import OperatorMetrics
from switchboard.telemetry.metrics import Metrics
from tests.support.helm import (
    CHART,
    LOADER,
    NAMESPACE,
    RELEASE,
    ROOT,
    Doc,
    Helm,
    container_args,
    find,
    injector_config,
    one,
    values_examples,
)

GOLDEN = ROOT / "tests" / "golden" / "helm"
CRDS = ROOT / "crds"
GENERATED = "<generated>"


def _chart_crds_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_crds", ROOT / "hack" / "chart_crds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chart_crds = _chart_crds_module()


@pytest.fixture(scope="module")
def helm() -> Helm:
    return Helm.found()


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Doc]:
    return helm.template()


# --- lint and schema -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [None, *values_examples()], ids=lambda p: p.name if p else "default"
)
def test_chart_lints_strictly(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", helm.kube_version]
    helm.ok(*args, *(["--values", str(values)] if values else []))


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("operator.replica=3", "at '/operator': additional properties 'replica' not allowed"),
        ("operator.replicas=two", "at '/operator/replicas': got string, want integer"),
        ("webhook.failurePolicy=Never", "at '/webhook/failurePolicy'"),
        ("redis.externalURL=http://redis:6379", "at '/redis/externalURL'"),
        ("webhook.url=http://127.0.0.1:9443/inject", "at '/webhook/url'"),
        ("sidecar.resources.requests.memory=lots", "at '/sidecar/resources/requests/memory'"),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(helm: Helm, setting: str, error: str) -> None:
    result = helm.run("template", *helm.template_args(sets=[setting]))
    assert result.returncode != 0
    assert error in result.stderr, result.stderr


def _schema_paths(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from _schema_paths(prop, f"{path}.{name}")


def _values_paths(values: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Paths of values.yaml's keys, down to where the schema leaves the keys free."""
    for name, value in values.items():
        yield f"{path}.{name}"
        node = schema.get("properties", {}).get(name, {})
        if isinstance(value, dict) and "properties" in node:
            yield from _values_paths(value, node, f"{path}.{name}")


def test_schema_and_values_yaml_have_the_same_keys_and_objects_are_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    in_schema = dict(_schema_paths(schema))
    in_values = set(_values_paths(values, schema))
    assert in_values <= set(in_schema), "values.yaml has keys values.schema.json does not"
    # Only resource lists offer more than values.yaml sets (a CPU limit nobody should default).
    unset = {p for p in set(in_schema) - in_values if not re.search(r"\.resources\.\w+\.", p)}
    assert not unset, f"values.schema.json has keys values.yaml lacks: {sorted(unset)}"
    for path, node in [("", schema), *in_schema.items()]:
        assert node.get("description") or not path, f"{path} has no description"
        if "properties" in node:
            assert node["additionalProperties"] is False, f"{path} accepts unknown keys"


def test_every_key_of_values_yaml_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^(\s*)([A-Za-z_][\w]*):")
    for number, line in enumerate(lines):
        if match := key.match(line):
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#"), f"values.yaml:{number + 1}: {match[2]} has no comment"


# --- CRDs ----------------------------------------------------------------------------------


def test_chart_crd_templates_are_generated_from_crds() -> None:
    templates = CHART / "templates"
    wanted = chart_crds.chart_templates()
    assert sorted(wanted) == sorted(p.name for p in templates.glob("crd-*.yaml"))
    for name, text in wanted.items():
        assert (templates / name).read_text() == text, f"{name} is out of date: run `make crds`"
    assert chart_crds.main(["--check"]) == 0


def test_chart_crds_check_finds_a_stale_template(tmp_path: Path) -> None:
    assert chart_crds.main(["--out", str(tmp_path)]) == 0
    assert chart_crds.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "crd-featurebudgets.yaml"
    stale.write_text(stale.read_text().replace("limitUSD", "limit"))
    assert chart_crds.main(["--check", "--out", str(tmp_path)]) == 1


def _crds_in_repo() -> dict[str, Doc]:
    return {
        doc["metadata"]["name"]: doc
        for path in sorted(CRDS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }


def test_rendered_crds_are_those_of_crds_with_labels_and_the_keep_policy(
    default: list[Doc],
) -> None:
    rendered = {d["metadata"]["name"]: d for d in find(default, "CustomResourceDefinition")}
    expected = _crds_in_repo()
    assert sorted(rendered) == sorted(expected)
    for name, crd in rendered.items():
        meta = crd["metadata"]
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/component"] == "crds"
        bare = {**crd, "metadata": {"name": name}}
        assert bare == expected[name]


def test_crds_are_gated_and_keep_is_optional(helm: Helm) -> None:
    assert not find(helm.template(sets=["crds.enabled=false"]), "CustomResourceDefinition")
    for crd in find(helm.template(sets=["crds.keep=false"]), "CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


# --- golden --------------------------------------------------------------------------------


def _generated(value: str) -> str:
    return GENERATED if value else value


def normalized(docs: Sequence[Doc]) -> list[Doc]:
    """The documents with random certificate material, CRDs and the dashboard replaced."""
    crds = _crds_in_repo()
    dashboard = (CHART / "dashboards" / "switchboard.json").read_text()
    out = []
    for original in docs:
        doc = copy.deepcopy(original)
        kind, meta = doc["kind"], doc["metadata"]
        if kind == "CustomResourceDefinition":
            assert doc["spec"] == crds[meta["name"]]["spec"]
            doc["spec"] = f"<spec of {meta['name']} in crds/>"
        elif kind == "Secret" and doc.get("type") == "kubernetes.io/tls":
            doc["data"] = {k: _generated(v) for k, v in doc["data"].items()}
            meta["annotations"]["switchboard.dev/not-after"] = GENERATED
        elif kind == "MutatingWebhookConfiguration":
            for hook in doc["webhooks"]:
                if "caBundle" in hook["clientConfig"]:
                    hook["clientConfig"]["caBundle"] = GENERATED
        elif kind == "ConfigMap" and "switchboard.json" in doc.get("data", {}):
            assert doc["data"]["switchboard.json"] == dashboard.rstrip("\n")
            doc["data"]["switchboard.json"] = "<dashboards/switchboard.json>"
        out.append(doc)
    return out


class _GoldenDumper(yaml.SafeDumper):
    """Multi-line strings (config files in ConfigMaps) as literal blocks, for review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str)


def golden_cases() -> list[tuple[str, Path]]:
    cases = [(p.name.removesuffix(".in.yaml"), p) for p in sorted(GOLDEN.glob("*.in.yaml"))]
    cases += [(f"example-{p.stem.removeprefix('values-')}", p) for p in values_examples()]
    return cases


def test_golden_cases_cover_defaults_and_an_example() -> None:
    found = {name for name, _ in golden_cases()}
    assert {"default", "namespaced", "example-production"} <= found


@pytest.mark.parametrize(("case", "values"), golden_cases(), ids=[c for c, _ in golden_cases()])
def test_template_matches_golden(helm: Helm, case: str, values: Path, update_golden: bool) -> None:
    got = normalized(helm.template(values=[values]))
    expected = GOLDEN / f"{case}.out.yaml"
    if update_golden:
        expected.write_text(yaml.dump_all(got, Dumper=_GoldenDumper, sort_keys=False, width=100))
    assert expected.is_file(), f"{expected} is missing: run pytest --update-golden"
    assert got == list(yaml.load_all(expected.read_text(), Loader=LOADER)), (
        f"{case}: helm template changed; review, then run pytest --update-golden"
    )


# --- objects -------------------------------------------------------------------------------


def test_names_are_63_characters_at_most_for_a_long_release(helm: Helm) -> None:
    docs = helm.template(release="a-long-release-name-for-checking-the-truncation-of-x")
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] != "CustomResourceDefinition":
            assert len(name) <= 63 and not name.endswith("-"), name


def test_every_object_carries_the_common_labels(default: list[Doc]) -> None:
    for doc in default:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/component"]


def test_operator_runs_two_peered_replicas_with_args_the_cli_accepts(default: list[Doc]) -> None:
    deployment = one(default, "Deployment", f"{RELEASE}-operator")
    assert deployment["spec"]["replicas"] == 2
    args = container_args(default)
    assert args[0] == "operator"
    parsed = parser().parse_args(args)
    assert parsed.all_namespaces
    assert parsed.peering == RELEASE and not parsed.standalone
    assert parsed.ledger == f"redis://{RELEASE}-redis.{NAMESPACE}.svc:6379/0"
    assert parsed.liveness == "http://0.0.0.0:8080/healthz"


def test_operator_pod_is_locked_down(default: list[Doc]) -> None:
    spec = one(default, "Deployment", f"{RELEASE}-operator")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["runAsUser"] == InjectorSettings().run_as_user


def test_injector_config_is_valid_injector_settings(helm: Helm) -> None:
    for values in [[], values_examples()]:
        config = injector_config(helm.template(values=values))
        settings = InjectorSettings.model_validate(config)
        assert settings.version == 1
    settings = InjectorSettings.model_validate(injector_config(helm.template()))
    assert settings.image == "switchboard:0.1.0"
    assert settings.failure_policy == "Ignore"


def test_injector_failure_policy_follows_the_webhook(helm: Helm) -> None:
    docs = helm.template(sets=["webhook.failurePolicy=Fail"])
    assert injector_config(docs)["failurePolicy"] == "Fail"
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Fail"


def test_webhook_asks_only_for_opted_in_pods_outside_system_namespaces(
    default: list[Doc],
) -> None:
    (hook,) = one(default, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["name"] == names.WEBHOOK_NAME
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] <= 10
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    (condition,) = hook["matchConditions"]
    assert f"['{names.ANNOTATION_INJECT}'] == 'true'" in condition["expression"]
    (excluded,) = hook["namespaceSelector"]["matchExpressions"]
    assert excluded["operator"] == "NotIn"
    assert set(excluded["values"]) == {"kube-system", "kube-public", "kube-node-lease", NAMESPACE}
    assert hook["clientConfig"]["service"] == {
        "name": f"{RELEASE}-webhook",
        "namespace": NAMESPACE,
        "path": names.WEBHOOK_INJECT_PATH,
        "port": 443,
    }


def _certificate(data: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def test_generated_certificate_is_signed_by_the_ca_in_the_bundle(default: list[Doc]) -> None:
    secret = one(default, "Secret", f"{RELEASE}-webhook-tls")
    (hook,) = one(default, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca, cert = _certificate(secret["data"]["ca.crt"]), _certificate(secret["data"]["tls.crt"])
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{RELEASE}-webhook.{NAMESPACE}.svc" in sans.get_values_for_type(x509.DNSName)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_webhook_url_replaces_the_service_and_is_in_the_certificate(helm: Helm) -> None:
    docs = helm.template(sets=["webhook.url=https://127.0.0.1:18443/inject"])
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:18443/inject"
    assert "service" not in hook["clientConfig"]
    assert not find(docs, "Service", f"{RELEASE}-webhook")
    cert = _certificate(one(docs, "Secret", f"{RELEASE}-webhook-tls")["data"]["tls.crt"])
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_cert_manager_issues_the_certificate_and_injects_the_ca(helm: Helm) -> None:
    docs = helm.template(sets=["webhook.certManager.enabled=true"])
    assert not find(docs, "Secret")
    webhook_config = one(docs, "MutatingWebhookConfiguration")
    annotation = webhook_config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{RELEASE}-webhook"
    assert "caBundle" not in webhook_config["webhooks"][0]["clientConfig"]
    serving = one(docs, "Certificate", f"{RELEASE}-webhook")["spec"]
    assert serving["secretName"] == f"{RELEASE}-webhook-tls"
    assert serving["issuerRef"]["name"] == f"{RELEASE}-webhook-ca"
    assert one(docs, "Certificate", f"{RELEASE}-webhook-ca")["spec"]["isCA"] is True
    assert {d["metadata"]["name"] for d in find(docs, "Issuer")} == {
        f"{RELEASE}-webhook-selfsigned",
        f"{RELEASE}-webhook-ca",
    }


def _rules(docs: Sequence[Doc], role: str) -> dict[str, set[str]]:
    """'group/resource' -> verbs of a ClusterRole."""
    found: dict[str, set[str]] = {}
    for rule in one(docs, "ClusterRole", role)["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return found


NAMESPACED_RIGHTS = {
    "switchboard.dev/routingpolicies": {"get", "list", "watch", "patch"},
    "switchboard.dev/featurebudgets": {"get", "list", "watch", "patch"},
    "switchboard.dev/routingpolicies/status": {"patch"},
    "switchboard.dev/featurebudgets/status": {"patch"},
    "switchboard.dev/routingpolicies/finalizers": {"update"},
    "/configmaps": {"create", "patch"},
    "/events": {"create"},
    "/secrets": {"get"},
    "/pods": {"list", "watch"},
}


def test_rbac_grants_exactly_what_the_operator_does_cluster_wide(default: list[Doc]) -> None:
    assert _rules(default, f"{RELEASE}-operator") == NAMESPACED_RIGHTS
    assert _rules(default, f"{RELEASE}-operator-cluster") == {
        "apiextensions.k8s.io/customresourcedefinitions": {"list", "watch"},
        "kopf.dev/clusterkopfpeerings": {"list", "watch", "create", "patch"},
    }
    bound = {d["roleRef"]["name"] for d in find(default, "ClusterRoleBinding")}
    assert bound == {f"{RELEASE}-operator", f"{RELEASE}-operator-cluster"}
    assert not find(default, "RoleBinding")


def test_rbac_with_watched_namespaces_is_granted_in_those_only(helm: Helm) -> None:
    docs = helm.template(
        sets=["operator.watchNamespaces={shop,billing}", "operator.rbac.secretNames={slack}"]
    )
    assert _rules(docs, f"{RELEASE}-operator") == {
        **NAMESPACED_RIGHTS,
        "kopf.dev/kopfpeerings": {"list", "watch", "create", "patch"},
    }
    assert _rules(docs, f"{RELEASE}-operator-cluster") == {
        "apiextensions.k8s.io/customresourcedefinitions": {"list", "watch"},
        "/namespaces": {"list", "watch"},
    }
    (secrets,) = [
        r
        for r in one(docs, "ClusterRole", f"{RELEASE}-operator")["rules"]
        if "secrets" in r["resources"]
    ]
    assert secrets["resourceNames"] == ["slack"]
    assert {d["metadata"]["namespace"] for d in find(docs, "RoleBinding")} == {"shop", "billing"}
    bound = {d["roleRef"]["name"] for d in find(docs, "ClusterRoleBinding")}
    assert bound == {f"{RELEASE}-operator-cluster"}
    parsed = parser().parse_args(container_args(docs))
    assert parsed.namespace == ["shop", "billing"]
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    only = hook["namespaceSelector"]["matchExpressions"][1]
    assert only == {
        "key": "kubernetes.io/metadata.name",
        "operator": "In",
        "values": ["shop", "billing"],
    }


def test_without_the_webhook_nothing_of_it_is_rendered(helm: Helm) -> None:
    docs = helm.template(sets=["webhook.enabled=false"])
    for kind in ("MutatingWebhookConfiguration", "Secret", "Certificate"):
        assert not find(docs, kind)
    assert not find(docs, "ConfigMap", f"{RELEASE}-operator")
    parsed = parser().parse_args(container_args(docs))
    assert parsed.webhook_port is None and parsed.injector_config is None


def test_redis_is_optional_and_an_external_url_wins(helm: Helm) -> None:
    external = helm.template(sets=["redis.externalURL=rediss://ledger.example:6380/1"])
    assert not find(external, "Deployment", f"{RELEASE}-redis")
    assert parser().parse_args(container_args(external)).ledger == "rediss://ledger.example:6380/1"
    none = helm.template(sets=["redis.enabled=false"])
    assert not find(none, "Service", f"{RELEASE}-redis")
    assert parser().parse_args(container_args(none)).ledger is None


def test_pod_monitor_scrapes_the_sidecars_metrics_port(helm: Helm) -> None:
    docs = helm.template(sets=["metrics.podMonitor.enabled=true"])
    (endpoint,) = one(docs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == podpatch.METRICS_PORT_NAME


# --- the dashboard -------------------------------------------------------------------------


def _metric_labels() -> dict[str, set[str]]:
    """Every metric family of the sidecar and the operator, with its label names."""
    found: dict[str, set[str]] = {}
    for registry in (Metrics().registry, OperatorMetrics().registry):
        for metric in set(registry._names_to_collectors.values()):
            name = metric._name
            found[name] = set(metric._labelnames)
    return found


SCRAPE_LABELS = {"namespace", "pod", "container", "job", "instance"}
SELECTOR = re.compile(r"(switchboard_\w+)(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def test_dashboard_uses_real_metric_names_and_labels() -> None:
    dashboard = json.loads((CHART / "dashboards" / "switchboard.json").read_text())
    known = _metric_labels()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = set()
    for expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            family = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert family in known, f"{name} is no metric of Switchboard ({expr})"
            used.add(family)
            labels = known[family] | SCRAPE_LABELS | ({"le"} if name.endswith("_bucket") else set())
            for matcher in filter(None, matchers.split(",")):
                label = matcher.split("=")[0].strip().rstrip("!~")
                assert label in labels, f"{name} has no label {label} ({expr})"
            for group in GROUPING.findall(expr):
                for label in (x.strip() for x in group.split(",")):
                    assert label in labels, f"{name} has no label {label} ({expr})"
    assert {
        "switchboard_cost_usd",
        "switchboard_budget_spent_usd",
        "switchboard_budget_limit_usd",
        "switchboard_failovers",
        "switchboard_cache_saved_usd",
        "switchboard_request_duration_seconds",
    } <= used


def test_dashboard_config_map_is_labelled_for_grafana(default: list[Doc]) -> None:
    config_map = one(default, "ConfigMap", f"{RELEASE}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["switchboard.json"])["uid"] == "switchboard-overview"


# --- image, versions, kind -----------------------------------------------------------------


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_dockerfile_runs_switchboard_as_the_uid_the_chart_and_sidecar_expect() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    (user,) = re.findall(r"^USER (\d+)(?::\d+)?$", text, re.MULTILINE)
    assert int(user) == InjectorSettings().run_as_user
    assert re.search(r'^ENTRYPOINT \["switchboard"\]$', text, re.MULTILINE)
    assert InjectorSettings().command == ["switchboard"]


def test_kind_config_is_a_kind_cluster() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [n["role"] for n in config["nodes"]].count("control-plane") == 1


# --- NOTES.txt -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "warnings"),
    [
        ([], ["Redis keeps the spend ledger on an emptyDir"]),
        (["redis.persistence.enabled=true"], []),
        (
            ["webhook.failurePolicy=Fail", "redis.enabled=false", "crds.enabled=false"],
            ["webhook.failurePolicy is Fail", "no Redis ledger", "crds.enabled is false"],
        ),
        (
            ["webhook.enabled=false", "redis.externalURL=redis://r:6379/0"],
            ["webhook.enabled is false"],
        ),
    ],
)
def test_notes_warn_first_then_give_the_next_three_commands(
    helm: Helm, tmp_path: Path, sets: list[str], warnings: list[str]
) -> None:
    lines = helm.notes(sets, tmp_path).strip().splitlines()
    assert len(lines) <= 20
    found = [line.removeprefix("WARNING: ") for line in lines if line.startswith("WARNING: ")]
    assert lines[: len(found)] == [f"WARNING: {w}" for w in found], "warnings come first"
    assert len(found) == len(warnings)
    assert all(w.startswith(expected) for w, expected in zip(found, warnings, strict=True))
    steps = [line[:2] for line in lines if re.match(r"\d\. ", line)]
    assert steps == ["1.", "2.", "3."]
    commands = [line.strip() for line in lines if line.startswith("   kubectl")]
    assert commands[0].startswith("kubectl apply -f examples/routingpolicy.yaml")
    assert '"switchboard.dev/inject":"true"' in commands[1]
    assert commands[2] == "kubectl get featurebudgets -A -w"


def test_quickstart_uses_the_image_the_readme_builds_and_the_chart_runs(
    default: list[Doc],
) -> None:
    deployment = one(default, "Deployment", f"{RELEASE}-operator")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    readme = (ROOT / "README.md").read_text()
    assert f"docker build -t {image} ." in readme
    assert f"kind load docker-image {image} --name switchboard" in readme
    mock = yaml.safe_load_all((ROOT / "examples" / "quickstart" / "mock-provider.yaml").read_text())
    (mock_deployment,) = [d for d in mock if d["kind"] == "Deployment"]
    assert mock_deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
