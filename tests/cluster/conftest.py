"""Fixtures for the cluster tier: one real control plane for the whole session.

etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 (switchboard.devcluster),
from binaries built by hack/k8s/build.sh (cached outside the repo) or from
KUBEBUILDER_ASSETS. The tier never skips: without etcd or the binaries it fails and says
what to install (build.sh fetches Go from the module proxy when the machine has none).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.devcluster import ClusterError, LocalCluster, build_binaries

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A started LocalCluster: `.kubeconfig`, `.kubectl(*args)`, `.bin_dir`, `.server`."""
    if not (shutil.which("etcd") or os.environ.get("KUBEBUILDER_ASSETS")):
        pytest.fail("the cluster tests need etcd: run scripts/install-deps", pytrace=False)
    try:
        cluster = LocalCluster(build_binaries(), tmp_path_factory.mktemp("kube"))
        cluster.start()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.data_dir / "etcd", ignore_errors=True)  # 60+ MB of WAL; logs stay


@pytest.fixture(scope="session")
def switchboard_crds(kube: LocalCluster) -> LocalCluster:
    """`kube` with every CRD in crds/ applied and Established."""
    for args in (
        ("apply", "-f", str(CRDS)),
        ("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS)),
    ):
        result = kube.kubectl(*args)
        if result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {result.stderr}", pytrace=False)
    return kube
