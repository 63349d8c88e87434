"""The Helm chart installed into the local control plane, and the operator run with what it made.

One release serves the module: `helm install` of helm/switchboard with `webhook.url` pointing at
127.0.0.1 (no pod runs here, so the API server calls an operator process on loopback instead of
the Service). That operator runs with the Deployment's own arguments, the files of its mounted
Secret and ConfigMap (the chart-generated certificate, the injector config) and a kubeconfig for
the chart's ServiceAccount, so its RBAC is what is tested: sufficient (it reconciles, reports
and injects) and least (it may not do what it does not need). Only what cannot work outside a
pod is replaced: addresses and ports, and the in-cluster Redis by a local redis-server.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.api import names
from switchboard.devcluster import LocalCluster
from tests.support.helm import CHART, EXAMPLES, RELEASE, ROOT, Helm
from tests.support.kubectl import apply, condition, get, ok, wait_for
from tests.support.operator import READY
from tests.support.processes import ServerProcess
from tests.support.redis_server import RedisServer, record_spend
from tests.support.webhook_receiver import WebhookReceiver

CRD_NAMES = sorted(
    doc["metadata"]["name"]
    for path in (ROOT / "crds").glob("*.yaml")
    for doc in yaml.safe_load_all(path.read_text())
    if doc
)
QUICKSTART = EXAMPLES / "quickstart"
OPERATOR = f"{RELEASE}-operator"
SERVICE_ACCOUNT = OPERATOR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Release:
    kube: LocalCluster
    helm: Helm
    namespace: str
    webhook_port: int
    notes: str

    def run(self, *args: str) -> str:
        kubeconfig = ["--kubeconfig", str(self.kube.kubeconfig), "--namespace", self.namespace]
        return self.helm.ok(*args, *kubeconfig)

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{SERVICE_ACCOUNT}"


def _adopt_existing_crds(kube: LocalCluster, namespace: str) -> None:
    """CRDs applied from crds/ by other tests become the release's, as Helm documents."""
    listed = ok(kube, "get", "crd", "-o", "jsonpath={.items[*].metadata.name}").split()
    for name in sorted(set(CRD_NAMES) & set(listed)):
        ok(kube, "label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")
        ok(
            kube, "annotate", "--overwrite", "crd", name,
            f"meta.helm.sh/release-name={RELEASE}", f"meta.helm.sh/release-namespace={namespace}",
        )  # fmt: skip


@pytest.fixture(scope="module")
def release(kube: LocalCluster) -> Iterator[Release]:
    helm = Helm.found()
    namespace = f"sb-{uuid.uuid4().hex[:8]}"
    _adopt_existing_crds(kube, namespace)
    port = free_port()
    url = f"https://127.0.0.1:{port}{names.WEBHOOK_INJECT_PATH}"
    installed = Release(kube, helm, namespace, port, "")
    installed.notes = installed.run(
        "install", RELEASE, str(CHART), "--create-namespace", "--set", f"webhook.url={url}"
    )
    try:
        yield installed
    finally:
        helm.run("uninstall", RELEASE, "--kubeconfig", str(kube.kubeconfig), "-n", namespace)
        kube.kubectl("delete", "namespace", namespace, "--wait=false")


# --- what helm install made ---------------------------------------------------------------


def test_install_creates_the_operator_its_account_and_the_webhook(release: Release) -> None:
    kube, ns = release.kube, release.namespace
    deployment = get(kube, ns, "deployment", OPERATOR)
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == SERVICE_ACCOUNT
    assert get(kube, ns, "serviceaccount", SERVICE_ACCOUNT) is not None
    for kind in ("clusterrole", "clusterrolebinding"):
        for name in (OPERATOR, f"{OPERATOR}-cluster"):
            assert get(kube, "", kind, name) is not None, f"{kind} {name}"
    secret = get(kube, ns, "secret", f"{RELEASE}-webhook-tls")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    config = get(kube, "", "mutatingwebhookconfiguration", f"{RELEASE}-webhook")
    assert config is not None
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert get(kube, ns, "deployment", f"{RELEASE}-redis") is not None


def test_install_establishes_the_crds(release: Release) -> None:
    crds = [f"crd/{name}" for name in CRD_NAMES]
    ok(release.kube, "wait", "--for=condition=Established", "--timeout=30s", *crds)
    for name in CRD_NAMES:
        crd = get(release.kube, "", "crd", name)
        assert crd is not None
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_notes_warn_first_then_give_three_steps_in_20_lines(release: Release) -> None:
    notes = release.notes.split("NOTES:\n", 1)[1].strip().splitlines()
    assert len(notes) <= 20
    assert notes[0].startswith("WARNING: Redis keeps the spend ledger on an emptyDir")
    steps = [line for line in notes if re.match(r"^\d\. ", line)]
    assert [s[:2] for s in steps] == ["1.", "2.", "3."]
    assert any("kubectl get featurebudgets" in line for line in notes)


def test_default_values_are_accepted_by_the_api_server(release: Release) -> None:
    """Every object of a default install (the Service-based webhook too) passes the API
    server's validation: a server-side dry run under another release name."""
    helm = release.helm
    args = helm.template_args(release="dryrun", namespace=release.namespace)
    text = helm.ok(
        "template", *args, "--kube-version", helm.kube_version, "--set", "crds.enabled=false"
    )
    result = release.kube.kubectl("create", "--dry-run=server", "-f", "-", input=text)
    assert result.returncode == 0, result.stderr
    created = "mutatingwebhookconfiguration.admissionregistration.k8s.io/dryrun-switchboard-webhook"
    assert f"{created} created (server dry run)" in result.stdout


def test_upgrade_keeps_the_generated_certificate_until_its_names_change(
    release: Release,
) -> None:
    def certificate() -> dict[str, str]:
        secret = get(release.kube, release.namespace, "secret", f"{RELEASE}-webhook-tls")
        assert secret is not None
        return dict(secret["data"])

    def ca_bundle() -> str:
        config = get(release.kube, "", "mutatingwebhookconfiguration", f"{RELEASE}-webhook")
        assert config is not None
        return str(config["webhooks"][0]["clientConfig"]["caBundle"])

    before = certificate()
    release.run("upgrade", RELEASE, str(CHART), "--reuse-values")
    assert certificate() == before and ca_bundle() == before["ca.crt"]
    url = f"https://localhost:{release.webhook_port}{names.WEBHOOK_INJECT_PATH}"
    release.run("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", f"webhook.url={url}")
    renamed = certificate()
    assert renamed["tls.crt"] != before["tls.crt"] and ca_bundle() == renamed["ca.crt"]
    url = url.replace("localhost", "127.0.0.1")  # back, for the tests that follow
    release.run("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", f"webhook.url={url}")


# --- RBAC: least ----------------------------------------------------------------------------


def can(release: Release, verb: str, resource: str) -> bool:
    """May the operator's ServiceAccount, in every namespace? `plural.group#sub` names a
    subresource."""
    resource, _, subresource = resource.partition("#")
    args = ["auth", "can-i", verb, resource, f"--as={release.subject}", "--all-namespaces"]
    args += [f"--subresource={subresource}"] if subresource else []
    result = release.kube.kubectl(*args)
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("watch", "routingpolicies.switchboard.dev"),
        ("patch", "featurebudgets.switchboard.dev#status"),
        ("update", "routingpolicies.switchboard.dev#finalizers"),
        ("create", "configmaps"),
        ("patch", "configmaps"),
        ("create", "events"),
        ("get", "secrets"),
        ("watch", "pods"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "clusterkopfpeerings.kopf.dev"),
    ],
)
def test_service_account_may_do_what_the_operator_does(
    release: Release, verb: str, resource: str
) -> None:
    assert can(release, verb, resource)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("delete", "pods"),
        ("create", "pods"),
        ("patch", "pods"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("create", "secrets"),
        ("delete", "configmaps"),
        ("get", "configmaps"),
        ("delete", "routingpolicies.switchboard.dev"),
        ("create", "featurebudgets.switchboard.dev"),
        ("update", "routingpolicies.switchboard.dev"),
        ("update", "featurebudgets.switchboard.dev#status"),
        ("patch", "pods#status"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "certificates.cert-manager.io"),
        ("patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io"),
        ("patch", "deployments.apps"),
        ("create", "events.events.k8s.io"),
        ("list", "namespaces"),
        ("delete", "clusterkopfpeerings.kopf.dev"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
    ],
)
def test_service_account_may_not_do_what_the_operator_does_not(
    release: Release, verb: str, resource: str
) -> None:
    assert not can(release, verb, resource)


def test_secret_names_narrow_the_secrets_the_operator_may_read(release: Release) -> None:
    """The RBAC of a release serving one namespace with `operator.rbac.secretNames`, applied
    as helm renders it (nothing else is needed to ask the API server)."""
    sets = [
        f"operator.watchNamespaces={{{release.namespace}}}",
        "operator.rbac.secretNames={slack}",
    ]
    text = release.helm.ok(
        "template",
        *release.helm.template_args(sets=sets, release="narrow", namespace=release.namespace),
        "--kube-version", release.helm.kube_version,
        "--show-only", "templates/operator-clusterrole.yaml",
        "--show-only", "templates/operator-rolebinding.yaml",
        "--show-only", "templates/operator-serviceaccount.yaml",
    )  # fmt: skip
    kube = release.kube
    ok(kube, "apply", "-f", "-", input=text)
    try:
        subject = f"system:serviceaccount:{release.namespace}:narrow-switchboard-operator"
        as_narrow = ["--as", subject, "-n", release.namespace]
        assert ok(kube, "auth", "can-i", "get", "secrets/slack", *as_narrow).strip() == "yes"
        other = kube.kubectl("auth", "can-i", "get", "secrets/other", *as_narrow)
        assert other.stdout.strip() == "no"
        elsewhere = kube.kubectl(
            "auth", "can-i", "get", "secrets/slack", "--as", subject, "-n", "default"
        )
        assert elsewhere.stdout.strip() == "no"
    finally:
        kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


# --- RBAC: sufficient; the webhook end to end ------------------------------------------------


def _mounted_files(
    kube: LocalCluster, namespace: str, pod_spec: dict[str, Any], root: Path
) -> dict[str, Path]:
    """The operator's Secret and ConfigMap volumes, written under `root`: mountPath -> dir."""
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    (container,) = pod_spec["containers"]
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            found = get(kube, namespace, "secret", volume["secret"]["secretName"])
            assert found is not None
            files = {k: base64.b64decode(v) for k, v in found["data"].items()}
        elif "configMap" in volume:
            found = get(kube, namespace, "configmap", volume["configMap"]["name"])
            assert found is not None
            files = {k: v.encode() for k, v in found["data"].items()}
        else:
            continue  # an emptyDir: nothing to bring along
        directory = root / mount["name"]
        directory.mkdir()
        for key, data in files.items():
            (directory / key).write_bytes(data)
        mounts[mount["mountPath"]] = directory
    return mounts


def _local_args(
    args: Sequence[str], mounts: dict[str, Path], overrides: dict[str, str]
) -> list[str]:
    """The Deployment's arguments, with mount paths made local and `overrides` applied."""
    missing = set(overrides) - {arg.partition("=")[0] for arg in args}
    assert not missing, f"the chart no longer passes {sorted(missing)}"
    out = []
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag in overrides:
            value = overrides[flag]
        for mount_path, directory in mounts.items():
            if value.startswith(mount_path + "/"):
                value = str(directory) + value.removeprefix(mount_path)
                break
        out.append(f"{flag}={value}" if value else flag)
    return out


def _service_account_kubeconfig(kube: LocalCluster, namespace: str, path: Path) -> Path:
    token = ok(kube, "-n", namespace, "create", "token", SERVICE_ACCOUNT, "--duration=1h").strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    (cluster,) = admin["clusters"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": SERVICE_ACCOUNT}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Operator:
    """The chart's operator as a local process; `start()` again after `stop()`. `ready`, when
    set, must hold before `start()` returns (the webhook serves)."""

    argv: list[str]
    env: dict[str, str]
    process: ServerProcess | None = None
    logs: list[str] = field(default_factory=list)
    ready: Callable[[], bool] | None = None

    def start(self) -> None:
        if self.process is None:
            self.process = ServerProcess(self.argv, READY, env=self.env)
        if self.ready is not None:
            wait_for("the API server calls the operator's webhook over TLS", self.ready)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.logs.append(self.process.log())
            self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def operator(
    release: Release, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    kube, ns = release.kube, release.namespace
    root = tmp_path_factory.mktemp("operator")
    deployment = get(kube, ns, "deployment", OPERATOR)
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    mounts = _mounted_files(kube, ns, pod_spec, root)
    args = _local_args(
        container["args"],
        mounts,
        {
            "--ledger": redis_server.url,
            "--metrics-host": "127.0.0.1",
            "--metrics-port": "0",
            "--liveness": f"http://127.0.0.1:{free_port()}/healthz",
            "--webhook-host": "127.0.0.1",
            "--webhook-port": str(release.webhook_port),
            "--budget-interval": "1",
        },
    )
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    env["KUBECONFIG"] = str(_service_account_kubeconfig(kube, ns, root / "kubeconfig"))
    process = Operator([sys.executable, "-m", "switchboard.cli", *args], env)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print("--- operator logs ---\n" + "\n".join(log[-8000:] for log in process.logs))


@pytest.fixture(scope="module")
def app_namespace(release: Release) -> str:
    kube = release.kube
    name = f"app-{uuid.uuid4().hex[:8]}"
    ok(kube, "create", "namespace", name)
    wait_for("the default ServiceAccount", lambda: get(kube, name, "serviceaccount", "default"))
    return name


def policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_ROUTING_POLICY,
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "providers": [
                {
                    "name": "openai",
                    "baseURL": "http://127.0.0.1:9/v1",
                    "apiKey": {"secretKeyRef": {"name": "llm-keys", "key": "openai"}},
                }
            ],
            "models": [{"name": "m", "provider": "openai", "price": {"inputPerMTok": 1}}],
            "routes": [{"name": "main", "targets": [{"model": "m"}]}],
        },
    }


def budget(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_FEATURE_BUDGET,
        "metadata": {"name": "checkout", "namespace": namespace},
        "spec": {
            "feature": "checkout",
            "limitUSD": 10,
            "period": "monthly",
            "thresholds": [{"percent": 50, "action": "alert"}],
            "alerts": {"webhookSecretRef": {"name": "slack", "key": "url"}, "events": True},
        },
    }


def test_operator_with_the_charts_rbac_reconciles_reports_and_alerts(
    release: Release,
    operator: Operator,
    app_namespace: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    kube, ns = release.kube, app_namespace
    record_spend(redis_server.url, ns, "6", tmp_path, provider="openai")
    receiver = WebhookReceiver()
    slack = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "slack", "namespace": ns},
        "stringData": {"url": receiver.url},
    }
    apply(kube, slack, policy(ns), budget(ns))
    wait_for(
        "the policy Ready",
        lambda: condition(get(kube, ns, "rp", "default"), "Ready").get("status") == "True",
    )
    config_map = get(kube, ns, "configmap", names.config_map_name("default"))
    assert config_map is not None and names.CONFIG_MAP_KEY in config_map["data"]

    def budget_status() -> dict[str, Any]:
        return dict((get(kube, ns, "featurebudget", "checkout") or {}).get("status") or {})

    status = wait_for("the budget's spend in its status", lambda: budget_status().get("spentUSD"))
    assert Decimal(status) == Decimal("6")

    def alert() -> list[dict[str, Any]]:
        found = get(kube, ns, "events", "--field-selector", "reason=BudgetThresholdReached")
        return list((found or {}).get("items") or [])

    try:
        assert wait_for("the 50 % alert as an Event", alert)
        # Its webhook URL came from the Secret.
        wait_for("the alert POSTed to the URL in the Secret", lambda: receiver.posts)
    finally:
        receiver.close()


def _pod(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }


def _create(kube: LocalCluster, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    ok(kube, "-n", namespace, "create", "-f", "-", input=yaml.safe_dump(body))
    stored = get(kube, namespace, "pod", body["metadata"]["name"])
    assert stored is not None
    return stored


def _injected(pod: dict[str, Any]) -> bool:
    return any(c["name"] == names.SIDECAR_CONTAINER for c in pod["spec"].get("initContainers", []))


@pytest.fixture(scope="module")
def webhook(release: Release, operator: Operator, app_namespace: str) -> Operator:
    """The operator serving the chart's webhook for `app_namespace` (its policy applied)."""
    kube = release.kube
    apply(kube, policy(app_namespace))

    def injects() -> bool:
        result = kube.kubectl(
            "-n", app_namespace, "create", "--dry-run=server", "-o", "json", "-f", "-",
            input=yaml.safe_dump(_pod("probe", **{names.ANNOTATION_INJECT: "true"})),
        )  # fmt: skip
        return result.returncode == 0 and _injected(json.loads(result.stdout))

    operator.ready = injects
    operator.start()
    return operator


def test_annotated_pod_comes_back_injected_and_unannotated_untouched(
    release: Release, webhook: Operator, app_namespace: str
) -> None:
    kube = release.kube
    stored = _create(kube, app_namespace, _pod("opted-in", **{names.ANNOTATION_INJECT: "true"}))
    assert _injected(stored)
    (sidecar,) = stored["spec"]["initContainers"]
    injector = yaml.safe_load(
        ok(
            kube,
            "-n",
            release.namespace,
            "get",
            "configmap",
            OPERATOR,
            "-o",
            "jsonpath={.data.injector\\.yaml}",
        )
    )
    assert sidecar["image"] == injector["image"] and sidecar["restartPolicy"] == "Always"
    (app,) = stored["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in app.get("env", [])}
    assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{injector['port']}/v1"
    plain = _create(kube, app_namespace, _pod("plain"))
    assert "initContainers" not in plain["spec"] and "env" not in plain["spec"]["containers"][0]
    false = _create(kube, app_namespace, _pod("opted-out", **{names.ANNOTATION_INJECT: "false"}))
    assert not _injected(false)


def test_with_the_operator_down_an_annotated_pod_is_admitted_then_reported(
    release: Release, webhook: Operator, app_namespace: str
) -> None:
    kube = release.kube
    webhook.stop()
    try:
        stored = _create(
            kube, app_namespace, _pod("while-down", **{names.ANNOTATION_INJECT: "true"})
        )
        assert not _injected(stored)  # failurePolicy Ignore: admitted as it was
    finally:
        webhook.start()

    def reported() -> list[dict[str, Any]]:
        found = get(
            kube, app_namespace, "events",
            "--field-selector", "involvedObject.name=while-down,reason=SidecarMissing",
        )  # fmt: skip
        return list((found or {}).get("items") or [])

    assert wait_for("the unmetered pod reported with an Event", reported)
    wait_for(
        "the unmetered pod counted in the policy's status",
        lambda: (
            (get(kube, app_namespace, "rp", "default") or {}).get("status", {}).get("unmeteredPods")
        ),
    )


def test_readme_quickstart_runs_against_the_api_server(release: Release, webhook: Operator) -> None:
    """examples/quickstart/ and the README's patch: the Deployment's pods, made by the
    controller manager, come back injected."""
    kube = release.kube
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart on kind", 1)[1].split("\n## ", 1)[0]
    (patch,) = re.findall(r"^kubectl -n shop patch deployment chat -p '(.+)'$", quickstart, re.M)
    assert "kubectl apply -f examples/quickstart/" in quickstart
    kube.kubectl("create", "namespace", "shop")  # other tests may have made it
    wait_for("the default ServiceAccount", lambda: get(kube, "shop", "serviceaccount", "default"))
    try:
        ok(kube, "apply", "-f", str(QUICKSTART))
        wait_for(
            "the quickstart policy Ready",
            lambda: (
                condition(get(kube, "shop", "rp", "quickstart"), "Ready").get("status") == "True"
            ),
        )
        ok(kube, "-n", "shop", "patch", "deployment", "chat", "-p", patch)

        def injected_pods() -> list[dict[str, Any]]:
            found = get(kube, "shop", "pods", "-l", "app=chat")
            return [p for p in (found or {}).get("items", []) if _injected(p)]

        (pod,) = wait_for("a chat pod created by the ReplicaSet, injected", injected_pods)
        (sidecar,) = pod["spec"]["initContainers"]
        env = {e["name"]: e.get("value") for e in sidecar.get("env", [])}
        assert env[names.ENV_FEATURE] == "chat"
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert any(
            v.get("configMap", {}).get("name") == names.config_map_name("quickstart")
            for v in volumes.values()
        )
    finally:
        kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(QUICKSTART))
