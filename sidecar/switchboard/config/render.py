"""Pure: RoutingPolicy + FeatureBudgets -> SidecarConfig, and its canonical text and hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import yaml

from switchboard.api.v1alpha1 import FeatureBudget, RoutingPolicy
from switchboard.config.model import BudgetConfig, SidecarConfig

# libyaml when present: the same text, several times faster.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_sidecar_config(policy: RoutingPolicy, budgets: Iterable[FeatureBudget]) -> SidecarConfig:
    """The sidecar config of `policy`; budgets sorted by name so the output is stable."""
    ordered = sorted(budgets, key=lambda b: b.metadata.name)
    return SidecarConfig(
        policy=policy.metadata.name,
        namespace=policy.metadata.namespace,
        spec=policy.spec,
        budgets=[BudgetConfig(name=b.metadata.name, spec=b.spec) for b in ordered],
    )


def config_text(config: SidecarConfig) -> str:
    """Canonical YAML of a config: what goes into the ConfigMap and what `render` prints."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def config_hash(text: str) -> str:
    """Short content hash of a rendered config."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
