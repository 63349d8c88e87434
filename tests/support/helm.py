"""helm for tests: the binary hack/k8s/build.sh builds, run on helm/switchboard.

`Helm.found()` runs build.sh once per session (a no-op when its cache is warm) and fails the
test, saying what to do, when helm cannot be had. `template` renders the chart the way
`helm install` would against the local control plane's Kubernetes version.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchboard.devcluster import ClusterError, build_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "switchboard"
EXAMPLES = ROOT / "examples"
RELEASE = "switchboard"
NAMESPACE = "switchboard-system"
Doc = dict[str, Any]
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are long


def values_examples() -> list[Path]:
    """examples/helm/values-*.yaml: values files users start from."""
    return sorted((EXAMPLES / "helm").glob("values-*.yaml"))


@dataclass(frozen=True)
class Helm:
    binary: Path

    @staticmethod
    @functools.cache
    def found() -> Helm:
        try:
            binary = build_binaries() / "helm"
        except ClusterError as exc:
            pytest.fail(f"helm is built by hack/k8s/build.sh, which failed: {exc}", pytrace=False)
        if not binary.is_file():
            pytest.fail(f"{binary} is missing: run hack/k8s/build.sh", pytrace=False)
        return Helm(binary)

    @property
    def kube_version(self) -> str:
        """The control plane's version: build.sh's directory is named after it (v1.37.2)."""
        return self.binary.parent.parent.name.removeprefix("v")

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """helm `args`; the caller checks `returncode`."""
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def template_args(
        self,
        values: Sequence[Path] = (),
        sets: Sequence[str] = (),
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[str]:
        """Arguments of `helm template` (or install) after the command."""
        args = [release, str(CHART), "--namespace", namespace]
        for path in values:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template(
        self, values: Sequence[Path] = (), sets: Sequence[str] = (), *, release: str = RELEASE
    ) -> list[Doc]:
        """The chart's objects, parsed, in helm's order (rendered once per arguments)."""
        text = self._rendered(tuple(values), tuple(sets), release)
        return [doc for doc in yaml.load_all(text, Loader=LOADER) if doc]

    @functools.cache  # noqa: B019 (one Helm per session)
    def _rendered(self, values: tuple[Path, ...], sets: tuple[str, ...], release: str) -> str:
        args = self.template_args(values, sets, release=release)
        return self.ok("template", *args, "--kube-version", self.kube_version)

    def notes(self, sets: Sequence[str], directory: Path) -> str:
        """NOTES.txt as `helm install` prints it (`helm template` does not render it): a copy
        of the chart in `directory` renders it through `tpl` into a ConfigMap."""
        chart = directory / "chart"
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "NOTES.txt")
        (chart / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
            'data: {notes: {{ tpl (.Files.Get "NOTES.txt") . | toJson }}}\n'
        )
        args = [RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", self.kube_version]
        for item in sets:
            args += ["--set", item]
        text = self.ok("template", *args, "--show-only", "templates/notes.yaml")
        notes: str = yaml.safe_load(text)["data"]["notes"]
        return notes


def find(docs: Sequence[Doc], kind: str, name: str | None = None) -> list[Doc]:
    """The documents of `kind` (and `name`, when given)."""
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: Sequence[Doc], kind: str, name: str | None = None) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[d['kind'] for d in docs]}"
    return found[0]


def container_args(docs: Sequence[Doc]) -> list[str]:
    """The operator container's arguments (after the image's `switchboard` entrypoint)."""
    deployment = one(docs, "Deployment", f"{RELEASE}-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def injector_config(docs: Sequence[Doc]) -> Doc:
    """The injector config file the chart gives the operator, parsed."""
    config_map = one(docs, "ConfigMap", f"{RELEASE}-operator")
    parsed: Doc = yaml.safe_load(config_map["data"]["injector.yaml"])
    return parsed
