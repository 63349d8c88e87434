"""The injection webhook against the real API server, which calls the operator over TLS.

One operator (with `--webhook-port`) and one MutatingWebhookConfiguration
(tests/cluster/mutating-webhook.yaml, pointed at the operator on 127.0.0.1 with a test CA)
serve the module; the configuration only selects this module's namespace. No kubelet runs, so
the pods are stored and never started: what is checked is the pod as the API server stored it.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.api import names
from switchboard.devcluster import LocalCluster, serving_certificate
from tests.support.kubectl import apply, get, ok, wait_for
from tests.support.operator import OperatorProcess

CONFIGURATION = Path(__file__).with_name("mutating-webhook.yaml")
IMAGE = "registry.example/switchboard:test"
TEST_LABEL = "switchboard.dev/webhook-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Webhook:
    """The operator serving the webhook of one namespace; stopped and started by the tests."""

    def __init__(self, kube: LocalCluster, namespace: str, directory: Path) -> None:
        self.kube, self.namespace, self.port = kube, namespace, _free_port()
        tls = serving_certificate("127.0.0.1")
        for name, data in (("ca.crt", tls.ca), ("tls.crt", tls.cert), ("tls.key", tls.key)):
            (directory / name).write_bytes(data)
        injector = directory / "injector.yaml"
        injector.write_text(f"kind: InjectorSettings\nversion: 1\nimage: {IMAGE}\n")
        self.ca = tls.ca
        self.args = [
            "--standalone",
            f"--webhook-port={self.port}",
            "--webhook-host=127.0.0.1",
            f"--webhook-cert={directory / 'tls.crt'}",
            f"--webhook-key={directory / 'tls.key'}",
            f"--injector-config={injector}",
        ]
        self.operator: OperatorProcess | None = None
        self.logs: list[str] = []
        self.configuration = ""
        """The MutatingWebhookConfiguration's name."""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{names.WEBHOOK_INJECT_PATH}"

    def start(self) -> OperatorProcess:
        if self.operator is None or not self.operator.alive():
            self.operator = OperatorProcess(self.kube.kubeconfig, self.namespace, args=self.args)
            wait_for("the webhook injects (a server-side dry run)", self._injects)
        return self.operator

    def _injects(self) -> bool:
        result = self.kube.kubectl(
            "-n", self.namespace, "create", "--dry-run=server", "-o", "json", "-f", "-",
            input=yaml.safe_dump(pod("probe-" + uuid.uuid4().hex[:6])),
        )  # fmt: skip
        return result.returncode == 0 and "initContainers" in json.loads(result.stdout)["spec"]

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.logs.append(self.operator.log())
            self.operator = None


def pod(name: str, *containers: dict[str, Any], **annotations: str | None) -> dict[str, Any]:
    """A pod opted in (override with inject=...); annotation keys without the group prefix."""
    given = {"inject": "true", **annotations}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "annotations": {f"{names.GROUP}/{k}": v for k, v in given.items() if v is not None},
        },
        "spec": {"containers": list(containers) or [{"name": "app", "image": "example/app:1"}]},
    }


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
                },
                {"name": "local", "baseURL": "http://127.0.0.1:9/v1", "apiKey": {"env": "K"}},
            ],
            "models": [
                {"name": "m", "provider": "openai", "price": {"inputPerMTok": 1}},
                {"name": "local-m", "provider": "local", "price": {"inputPerMTok": 1}},
            ],
            "routes": [{"name": "main", "targets": [{"model": "m"}]}],
        },
    }


def configuration(name: str, url: str, ca: bytes, token: str) -> dict[str, Any]:
    """The chart's webhook configuration, calling `url` for the namespaces labelled `token`."""
    config: dict[str, Any] = yaml.safe_load(CONFIGURATION.read_text())
    config["metadata"]["name"] = name
    (hook,) = config["webhooks"]
    assert hook["name"] == names.WEBHOOK_NAME
    assert hook["clientConfig"]["url"].endswith(names.WEBHOOK_INJECT_PATH)
    hook["clientConfig"] = {"url": url, "caBundle": base64.b64encode(ca).decode()}
    hook["namespaceSelector"]["matchLabels"] = {TEST_LABEL: token}
    return config


def policy_status(kube: LocalCluster, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = (get(kube, namespace, "rp", "default") or {}).get("status", {})
    return status


@pytest.fixture(scope="module")
def webhook(
    switchboard_crds: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    kube = switchboard_crds
    token = uuid.uuid4().hex[:8]
    namespace = f"wh-{token}"
    ok(kube, "create", "namespace", namespace)
    ok(kube, "label", "namespace", namespace, f"{TEST_LABEL}={token}")
    wait_for("the default ServiceAccount", lambda: get(kube, namespace, "serviceaccount/default"))
    apply(kube, policy(namespace))
    hook = Webhook(kube, namespace, tmp_path_factory.mktemp("webhook"))
    name = hook.configuration = f"switchboard-test-{token}"
    apply(kube, configuration(name, hook.url, hook.ca, token))
    try:
        hook.start()
        wait_for("the policy rendered", lambda: policy_status(kube, namespace).get("configMap"))
        yield hook
    finally:
        kube.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")
        hook.stop()
        print("--- operator logs ---\n" + "\n".join(log[-6000:] for log in hook.logs))


@pytest.fixture
def running(webhook: Webhook) -> Webhook:
    webhook.start()
    return webhook


def create(hook: Webhook, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Create the pod; (the pod as stored, kubectl's stderr)."""
    result = hook.kube.kubectl(
        "-n", hook.namespace, "create", "-o", "json", "-f", "-", input=yaml.safe_dump(body)
    )
    assert result.returncode == 0, result.stderr
    stored = get(hook.kube, hook.namespace, "pod", body["metadata"]["name"])
    assert stored is not None
    return stored, result.stderr


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def events(hook: Webhook, pod_name: str) -> list[dict[str, Any]]:
    found = ok(
        hook.kube, "-n", hook.namespace, "get", "events", "-o", "json",
        f"--field-selector=involvedObject.name={pod_name},reason=SidecarMissing",
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(found)["items"]
    return items


def test_annotated_pod_is_stored_with_the_native_sidecar_and_the_base_url(
    running: Webhook,
) -> None:
    own = {"name": "own", "image": "a:1", "env": [{"name": "OPENAI_BASE_URL", "value": "x"}]}
    app = {"name": "app", "image": "a:1", "env": [{"name": "LOG_LEVEL", "value": "debug"}]}
    stored, stderr = create(running, pod("injected", app, own, feature="chat", team="care"))
    spec = stored["spec"]

    (sidecar,) = spec["initContainers"]
    assert (sidecar["name"], sidecar["restartPolicy"], sidecar["image"]) == (
        names.SIDECAR_CONTAINER,
        "Always",
        IMAGE,
    )
    assert sidecar["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}
    env = env_of(sidecar)
    assert env["SWITCHBOARD_KEY_OPENAI"] == {"secretKeyRef": {"name": "llm-keys", "key": "openai"}}
    assert "K" not in env and "SWITCHBOARD_KEY_LOCAL" not in env
    assert (env[names.ENV_FEATURE], env[names.ENV_TEAM]) == ("chat", "care")
    assert env[names.ENV_NAMESPACE] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["switchboard-config"]["configMap"]["name"] == "switchboard-default"
    assert volumes["switchboard-outbox"]["emptyDir"] == {"sizeLimit": "64Mi"}

    app_env, own_env = (env_of(c) for c in spec["containers"])
    url = f"http://127.0.0.1:{names.DEFAULT_PORT}/v1"
    assert app_env == {"LOG_LEVEL": "debug", "OPENAI_BASE_URL": url, "OPENAI_API_BASE": url}
    assert own_env == {"OPENAI_BASE_URL": "x"}
    assert stderr == ""
    assert running.start().metric("switchboard_operator_injections_total", result="Injected") >= 1


@pytest.mark.parametrize("inject", [None, "false"], ids=["unannotated", "false"])
def test_pod_not_opted_in_is_stored_untouched(running: Webhook, inject: str | None) -> None:
    stored, _ = create(running, pod(f"plain-{inject or 'none'}", inject=inject))
    assert "initContainers" not in stored["spec"]
    assert [env_of(c) for c in stored["spec"]["containers"]] == [{}]


def test_pod_already_carrying_the_sidecar_is_stored_as_given(running: Webhook) -> None:
    body = pod("carrying")
    sidecar = {"name": names.SIDECAR_CONTAINER, "image": "mine:1", "restartPolicy": "Always"}
    body["spec"]["initContainers"] = [sidecar]
    stored, _ = create(running, body)
    assert [(c["name"], c["image"]) for c in stored["spec"]["initContainers"]] == [
        (names.SIDECAR_CONTAINER, "mine:1")
    ]
    assert "volumes" not in stored["spec"] or all(
        not v["name"].startswith("switchboard-") for v in stored["spec"]["volumes"]
    )
    assert [env_of(c) for c in stored["spec"]["containers"]] == [{}]


def test_missing_policy_admits_the_pod_unchanged_with_a_warning_then_an_event(
    running: Webhook,
) -> None:
    stored, stderr = create(running, pod("orphan", policy="absent"))
    assert "initContainers" not in stored["spec"]
    assert "Warning: switchboard: sidecar not injected: RoutingPolicy absent does not exist" in (
        stderr
    )
    (event,) = wait_for("the SidecarMissing Event", lambda: events(running, "orphan"))
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == stored["metadata"]["uid"]
    assert "RoutingPolicy absent does not exist" in event["message"]


def failure_policy(hook: Webhook, policy: str) -> None:
    change = [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": policy}]
    ok(
        hook.kube, "patch", "mutatingwebhookconfiguration", hook.configuration,
        "--type=json", f"--patch={json.dumps(change)}",
    )  # fmt: skip


def test_with_the_operator_down_only_opted_in_pods_call_the_webhook(webhook: Webhook) -> None:
    webhook.stop()
    failure_policy(webhook, "Fail")
    try:
        refused = wait_for(
            "an opted-in pod refused (failurePolicy Fail, nobody answers)",
            lambda: webhook.kube.kubectl(
                "-n", webhook.namespace, "create", "--dry-run=server", "-f", "-",
                input=yaml.safe_dump(pod("refused")),
            ).stderr,
        )  # fmt: skip
        assert "failed calling webhook" in refused
        # matchConditions: the API server does not even call the webhook for these.
        create(webhook, pod("not-opted-in", inject="false"))
        create(webhook, pod("no-annotation", inject=None))
    finally:
        failure_policy(webhook, "Ignore")


def test_with_the_operator_down_a_pod_is_admitted_then_reported_unmetered(
    webhook: Webhook,
) -> None:
    kube, namespace = webhook.kube, webhook.namespace
    webhook.stop()
    # failurePolicy Ignore (once the API server has seen it back from the test above).
    wait_for(
        "an opted-in pod admitted without the webhook",
        lambda: kube.kubectl(
            "-n", namespace, "create", "-f", "-", input=yaml.safe_dump(pod("unmetered"))
        ).returncode == 0,
    )  # fmt: skip
    stored = get(kube, namespace, "pod", "unmetered")
    assert stored is not None and "initContainers" not in stored["spec"]  # admitted as is

    operator = webhook.start()
    (event,) = wait_for("the SidecarMissing Event", lambda: events(webhook, "unmetered"))
    assert "webhook was unavailable" in event["message"]

    def counted(expected: int) -> bool:
        status = policy_status(kube, namespace)
        gauge = operator.metric(
            "switchboard_operator_unmetered_pods", namespace=namespace, policy="default"
        )
        return status.get("unmeteredPods") == expected and gauge == expected

    wait_for("unmeteredPods 1 in status and metric", lambda: counted(1))
    watched = get(kube, namespace, "pod", "unmetered")
    assert watched is not None  # the operator only watches pods: no finalizer, no annotation
    assert "finalizers" not in watched["metadata"]
    assert watched["metadata"]["annotations"] == {names.ANNOTATION_INJECT: "true"}
    ok(kube, "-n", namespace, "delete", "pod", "unmetered", "--wait=false")
    wait_for("unmeteredPods 0 once the pod is gone", lambda: counted(0))
