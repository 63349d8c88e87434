"""Pure: rules across fields of a RoutingPolicy and its FeatureBudgets, each reported with its path.

The API server checks the structure (from the CRD schema); these are the rules it cannot see,
reported by `switchboard validate`, the sidecar on load and the operator as an `Invalid` status.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from switchboard.api.v1alpha1 import FeatureBudgetSpec, RoutingPolicySpec, Target


@dataclass(frozen=True)
class Problem:
    """One error: a dotted path into the document and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _duplicates(names: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    dup: set[str] = set()
    for name in names:
        (dup if name in seen else seen).add(name)
    return dup


def _target_problems(path: str, targets: Sequence[Target], models: set[str]) -> Iterator[Problem]:
    for i, target in enumerate(targets):
        if target.model not in models:
            yield Problem(f"{path}[{i}].model", f"unknown model {target.model!r}")


def policy_problems(spec: RoutingPolicySpec, root: str = "spec") -> list[Problem]:
    """Every cross-field error of a policy; empty when it is sound."""
    out: list[Problem] = []
    providers = {p.name: p for p in spec.providers}
    models = {m.name: m for m in spec.models}
    for name in sorted(_duplicates(p.name for p in spec.providers)):
        out.append(Problem(f"{root}.providers", f"provider {name!r} is defined twice"))
    for name in sorted(_duplicates(m.name for m in spec.models)):
        out.append(Problem(f"{root}.models", f"model {name!r} is defined twice"))
    for name in sorted(_duplicates(r.name for r in spec.routes)):
        out.append(Problem(f"{root}.routes", f"route {name!r} is defined twice"))
    for i, model in enumerate(spec.models):
        if model.provider not in providers:
            out.append(
                Problem(f"{root}.models[{i}].provider", f"unknown provider {model.provider!r}")
            )
    catch_all: dict[str, str] = {}
    for i, route in enumerate(spec.routes):
        path = f"{root}.routes[{i}]"
        out.extend(_target_problems(f"{path}.targets", route.targets, set(models)))
        out.extend(_target_problems(f"{path}.fallback", route.fallback, set(models)))
        kinds = {
            models[t.model].type for t in [*route.targets, *route.fallback] if t.model in models
        }
        if len(kinds) > 1:
            out.append(Problem(f"{path}.targets", "a route mixes chat and embedding models"))
        if route.strategy == "weighted" and not any(t.weight for t in route.targets):
            out.append(Problem(f"{path}.targets", "weighted strategy needs a positive weight"))
        kind = next(iter(kinds), "chat")
        if kind in catch_all:
            out.append(
                Problem(path, f"unreachable: route {catch_all[kind]!r} before it has no match")
            )
        if route.match is None:
            catch_all.setdefault(kind, route.name)
        if route.match is not None:
            for j, glob in enumerate(route.match.requested_models or []):
                try:
                    re.compile(fnmatch.translate(glob))
                except re.error as exc:
                    out.append(Problem(f"{path}.match.requestedModels[{j}]", str(exc)))
            low, high = route.match.min_prompt_tokens, route.match.max_prompt_tokens
            if low is not None and high is not None and low > high:
                out.append(
                    Problem(f"{path}.match.minPromptTokens", "is larger than maxPromptTokens")
                )
    known_regions = {p.region for p in spec.providers if p.region is not None}
    for user_region, allowed in spec.data_residency.items():
        for j, region in enumerate(allowed):
            if region not in known_regions:
                out.append(
                    Problem(
                        f"{root}.dataResidency.{user_region}[{j}]",
                        f"no provider is tagged with region {region!r}",
                    )
                )
    return out


def budget_problems(
    spec: FeatureBudgetSpec, policy: RoutingPolicySpec | None, root: str = "spec"
) -> list[Problem]:
    """Every cross-field error of a budget, checked against its policy when there is one."""
    out: list[Problem] = []
    percents = [t.percent for t in spec.thresholds]
    if percents != sorted(percents) or len(set(percents)) != len(percents):
        out.append(Problem(f"{root}.thresholds", "percents must be strictly ascending"))
    targets: set[str] = set()
    if policy is not None:
        targets = {m.name for m in policy.models} | {r.name for r in policy.routes}
    for i, threshold in enumerate(spec.thresholds):
        path = f"{root}.thresholds[{i}]"
        if threshold.action == "downgrade":
            if threshold.downgrade_to is None:
                out.append(Problem(f"{path}.downgradeTo", "downgrade needs downgradeTo"))
            elif policy is not None and threshold.downgrade_to not in targets:
                out.append(
                    Problem(
                        f"{path}.downgradeTo",
                        f"unknown model or route {threshold.downgrade_to!r}",
                    )
                )
        elif threshold.downgrade_to is not None:
            out.append(Problem(f"{path}.downgradeTo", "only a downgrade takes downgradeTo"))
    return out
