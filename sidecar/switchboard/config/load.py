"""Pure parsing of manifests into a `SidecarConfig`, plus the thin file reader around it.

Accepted: a SidecarConfig; a RoutingPolicy manifest; a multi-document YAML holding one
RoutingPolicy and its FeatureBudgets; or a directory of such files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from switchboard.api import names
from switchboard.api.problems import Problem, budget_problems, policy_problems
from switchboard.api.v1alpha1 import FeatureBudget, RoutingPolicy
from switchboard.config.model import InjectorSettings, SidecarConfig
from switchboard.config.render import render_sidecar_config

YAML_SUFFIXES = (".yaml", ".yml", ".json")


class ConfigError(Exception):
    """A config that cannot be used; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def _dotted(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def problems_of(error: ValidationError, prefix: str) -> list[Problem]:
    """pydantic errors as problems with dotted paths."""
    return [Problem(prefix + (_dotted(e["loc"]) or "(document)"), e["msg"]) for e in error.errors()]


def parse_documents(text: str, source: str = "<input>") -> list[tuple[str, Mapping[str, Any]]]:
    """YAML documents of a text, each with a label saying where it came from."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(source, f"not valid YAML: {exc}")]) from exc
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, doc in enumerate(docs):
        label = source if len(docs) == 1 else f"{source}#{i}"
        if not isinstance(doc, Mapping):
            raise ConfigError([Problem(label, "a document must be a mapping")])
        out.append((label, doc))
    return out


def _document_label(label: str, doc: Mapping[str, Any]) -> str:
    name = (
        (doc.get("metadata") or {}).get("name")
        if isinstance(doc.get("metadata"), Mapping)
        else None
    )
    return f"{label} {doc.get('kind', '?')}/{name}" if name else label


def config_from_documents(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> SidecarConfig:
    """The config described by a set of documents, or ConfigError with every problem."""
    problems: list[Problem] = []
    policies: list[tuple[str, RoutingPolicy]] = []
    budgets: list[tuple[str, FeatureBudget]] = []
    configs: list[SidecarConfig] = []
    for label, doc in docs:
        where = _document_label(label, doc)
        kind = doc.get("kind")
        try:
            if kind == names.KIND_SIDECAR_CONFIG:
                configs.append(SidecarConfig.model_validate(doc))
            elif kind == names.KIND_ROUTING_POLICY:
                policies.append((where, RoutingPolicy.model_validate(doc)))
            elif kind == names.KIND_FEATURE_BUDGET:
                budgets.append((where, FeatureBudget.model_validate(doc)))
            else:
                problems.append(
                    Problem(
                        f"{where}: kind",
                        f"expected RoutingPolicy, FeatureBudget or SidecarConfig, got {kind!r}",
                    )
                )
        except ValidationError as exc:
            problems.extend(problems_of(exc, f"{where}: "))
    if problems:
        raise ConfigError(problems)
    if configs:
        if len(configs) > 1 or policies or budgets:
            raise ConfigError([Problem("(input)", "a SidecarConfig must stand alone")])
        config = configs[0]
        problems = policy_problems(config.spec)
        for i, budget in enumerate(config.budgets):
            problems += budget_problems(budget.spec, config.spec, f"budgets[{i}].spec")
    else:
        if len(policies) != 1:
            raise ConfigError(
                [Problem("(input)", f"expected exactly one RoutingPolicy, found {len(policies)}")]
            )
        where, policy = policies[0]
        config = render_sidecar_config(policy, [b for _, b in budgets])
        problems = policy_problems(policy.spec, f"{where}: spec")
        for bwhere, feature_budget in budgets:
            problems += budget_problems(feature_budget.spec, policy.spec, f"{bwhere}: spec")
    if problems:
        raise ConfigError(problems)
    return config


def read_documents(path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """Edge: the documents of a file, or of every YAML file of a directory in name order."""
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
        else:
            files = [path]
        docs: list[tuple[str, Mapping[str, Any]]] = []
        for file in files:
            docs += parse_documents(file.read_text(encoding="utf-8"), str(file))
    except OSError as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc.strerror or exc}")]) from exc
    return docs


def load_config(path: Path) -> SidecarConfig:
    """Edge: the config at `path`, or ConfigError."""
    return config_from_documents(read_documents(path))


def injector_settings_from_documents(
    docs: Sequence[tuple[str, Mapping[str, Any]]],
) -> InjectorSettings:
    """The InjectorSettings of a file holding exactly one such document, or ConfigError."""
    if len(docs) != 1:
        where = docs[0][0] if docs else "<input>"
        raise ConfigError([Problem(where, f"expected one InjectorSettings, found {len(docs)}")])
    label, doc = docs[0]
    try:
        return InjectorSettings.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc, f"{label}: ")) from exc


def load_injector_settings(path: Path) -> InjectorSettings:
    """Edge: the InjectorSettings file at `path` (`switchboard operator --injector-config`)."""
    return injector_settings_from_documents(read_documents(path))
