"""The local control plane behaves like a real cluster: API, controllers, RBAC, GC."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.devcluster import LocalCluster

DEADLINE_SECONDS = 60.0


def wait_until(what: str, check: Callable[[], bool], timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def ok(kube: LocalCluster, *args: str, input: str | None = None) -> str:
    result = kube.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def exists(kube: LocalCluster, *args: str) -> bool:
    result = kube.kubectl("get", *args, "-o", "name")
    assert result.returncode == 0 or "NotFound" in result.stderr, result.stderr
    return result.returncode == 0


def apply(kube: LocalCluster, *documents: dict[str, Any]) -> None:
    ok(kube, "apply", "-f", "-", input=yaml.safe_dump_all(documents))


def needs_controller_manager(kube: LocalCluster) -> None:
    if not kube.has_controller_manager:
        pytest.skip("no kube-controller-manager binary (envtest assets ship none)")


def test_api_server_answers_ready_and_reports_its_version(kube: LocalCluster) -> None:
    assert ok(kube, "get", "--raw", "/readyz") == "ok"
    version = json.loads(ok(kube, "version", "-o", "json"))["serverVersion"]
    assert (int(version["major"]), int(version["minor"])) >= (1, 33)
    assert kube.server.startswith("https://127.0.0.1:")


def test_namespace_deletion_removes_its_content_and_completes(kube: LocalCluster) -> None:
    needs_controller_manager(kube)
    ok(kube, "create", "namespace", "sb-doomed")
    ok(kube, "-n", "sb-doomed", "create", "configmap", "left-behind", "--from-literal=k=v")
    ok(kube, "delete", "namespace", "sb-doomed", "--wait=false")
    wait_until("namespace sb-doomed is gone", lambda: not exists(kube, "namespace", "sb-doomed"))


def test_new_namespace_gets_default_service_account_and_root_ca(kube: LocalCluster) -> None:
    needs_controller_manager(kube)
    ok(kube, "create", "namespace", "sb-fresh")
    wait_until("ServiceAccount default", lambda: exists(kube, "-n", "sb-fresh", "sa", "default"))
    wait_until(
        "ConfigMap kube-root-ca.crt",
        lambda: exists(kube, "-n", "sb-fresh", "configmap", "kube-root-ca.crt"),
    )
    published = ok(
        kube, "-n", "sb-fresh", "get", "cm/kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"
    )
    cluster = yaml.safe_load(kube.kubeconfig.read_text())["clusters"][0]["cluster"]
    assert (
        published.strip()
        == base64.b64decode(cluster["certificate-authority-data"]).decode().strip()
    )


def test_service_account_token_secret_is_filled_and_authenticates(
    kube: LocalCluster, tmp_path: Path
) -> None:
    needs_controller_manager(kube)
    ok(kube, "create", "namespace", "sb-token")
    wait_until("ServiceAccount default", lambda: exists(kube, "-n", "sb-token", "sa", "default"))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "default-token",
            "namespace": "sb-token",
            "annotations": {"kubernetes.io/service-account.name": "default"},
        },
    }
    apply(kube, secret)
    get_token = ("-n", "sb-token", "get", "secret/default-token", "-o", "jsonpath={.data.token}")
    wait_until("the token controller fills the Secret", lambda: bool(ok(kube, *get_token)))

    config = yaml.safe_load(kube.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": base64.b64decode(ok(kube, *get_token)).decode()}
    as_token = tmp_path / "token.kubeconfig"
    as_token.write_text(yaml.safe_dump(config))
    whoami = ok(kube, f"--kubeconfig={as_token}", "auth", "whoami", "-o", "json")
    assert json.loads(whoami)["status"]["userInfo"]["username"] == (
        "system:serviceaccount:sb-token:default"
    )


def test_rbac_denies_a_user_without_rights_until_bound(kube: LocalCluster) -> None:
    ok(kube, "create", "namespace", "sb-rbac")
    denied = kube.kubectl("-n", "sb-rbac", "--as=someone", "auth", "can-i", "create", "pods")
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    forbidden = kube.kubectl("-n", "sb-rbac", "--as=someone", "get", "configmaps")
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr
    assert ok(kube, "auth", "can-i", "create", "pods").strip() == "yes"

    ok(kube, "-n", "sb-rbac", "create", "role", "pod-maker", "--verb=create", "--resource=pods")
    ok(
        kube,
        "-n",
        "sb-rbac",
        "create",
        "rolebinding",
        "someone",
        "--role=pod-maker",
        "--user=someone",
    )
    allowed = ok(kube, "-n", "sb-rbac", "--as=someone", "auth", "can-i", "create", "pods")
    assert allowed.strip() == "yes"


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(kube: LocalCluster) -> None:
    needs_controller_manager(kube)
    ok(kube, "create", "namespace", "sb-gc")
    ok(kube, "-n", "sb-gc", "create", "configmap", "owner")
    uid = ok(kube, "-n", "sb-gc", "get", "cm/owner", "-o", "jsonpath={.metadata.uid}")
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dependent", "namespace": "sb-gc", "ownerReferences": [owner]},
    }
    bystander = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bystander", "namespace": "sb-gc"},
    }
    apply(kube, dependent, bystander)

    ok(kube, "-n", "sb-gc", "delete", "cm/owner")
    wait_until(
        "the dependent is collected", lambda: not exists(kube, "-n", "sb-gc", "cm/dependent")
    )
    assert exists(kube, "-n", "sb-gc", "cm/bystander")
