"""Edge: `switchboard validate` — read manifests, report every problem with its path."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from switchboard.api import names
from switchboard.api.problems import Problem, budget_problems
from switchboard.api.v1alpha1 import FeatureBudget
from switchboard.config.load import ConfigError, config_from_documents, problems_of, read_documents
from switchboard.config.runtime import compile_runtime
from switchboard.pricing.catalog import catalog_price


def _budgets_alone(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Problem]:
    problems: list[Problem] = []
    for label, doc in docs:
        if doc.get("kind") != names.KIND_FEATURE_BUDGET:
            problems.append(Problem(f"{label}: kind", f"unexpected kind {doc.get('kind')!r}"))
            continue
        try:
            budget = FeatureBudget.model_validate(doc)
        except ValidationError as exc:
            problems += problems_of(exc, f"{label}: ")
            continue
        problems += budget_problems(budget.spec, None, f"{label}: spec")
    return problems


def validate(paths: Sequence[Path]) -> tuple[bool, list[str]]:
    """(ok, lines to print): every problem with its path, or a one-line summary."""
    try:
        docs = [d for p in paths for d in read_documents(p)]
        if not any(d.get("kind") != names.KIND_FEATURE_BUDGET for _, d in docs):
            problems = _budgets_alone(docs)
            if problems:
                raise ConfigError(problems)
            return True, [f"ok: {len(docs)} FeatureBudget(s)"]
        config = config_from_documents(docs)
        runtime = compile_runtime(config, env=os.environ, price_lookup=catalog_price)
    except ConfigError as exc:
        return False, [str(p) for p in exc.problems]
    spec = config.spec
    return True, [
        f"ok: RoutingPolicy {config.policy}: {len(spec.providers)} providers, "
        f"{len(runtime.models)} models, {len(spec.routes)} routes, "
        f"{len(config.budgets)} FeatureBudget(s)"
    ]
