"""Pure: what the operator wants the cluster to hold, computed from what it read.

A RoutingPolicy and the FeatureBudgets of its namespace become the ConfigMap its sidecars read
(the same text `switchboard render` prints for the same manifests) and the policy's status, or
an `Invalid` status with every problem found, in which case the last good ConfigMap stays.
The budget side (status from ledger totals, alerts due) is in `operator/budgets.py`.

No clock, socket or environment: `now` and the price lookup come in as arguments. Statuses
come out as JSON-ready dicts (camelCase, no nulls, Decimal as a number) to merge into `status`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from switchboard.api import names
from switchboard.api.problems import Problem, budget_problems, policy_problems
from switchboard.api.v1alpha1 import (
    Condition,
    FeatureBudget,
    RoutingPolicy,
    RoutingPolicyStatus,
)
from switchboard.config.load import ConfigError, problems_of
from switchboard.config.render import config_hash, config_text, render_sidecar_config
from switchboard.config.runtime import PriceLookup, compile_runtime

Body = Mapping[str, Any]
"""A Kubernetes object as read from the API (a kopf body or a plain dict)."""
ConditionStatus = Literal["True", "False", "Unknown"]
MESSAGE_LIMIT = 1500
"""Characters kept of a condition message; the rest is cut with a count of what was left."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "switchboard-operator"}
READY = "Ready"

_Status = TypeVar("_Status", bound=BaseModel)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(status: BaseModel) -> dict[str, Any]:
    """A status model as the API server takes it: camelCase, no nulls, Decimal as a number."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def previous_status(model: type[_Status], raw: object) -> _Status:
    """The status an object carries, or an empty one when it has none or an unreadable one."""
    try:
        return model.model_validate(raw if isinstance(raw, Mapping) else {})
    except ValidationError:
        return model.model_validate({})


def _shorten(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    cut = message[:MESSAGE_LIMIT]
    return f"{cut}... ({len(message) - MESSAGE_LIMIT} more characters)"


def condition(
    previous: Sequence[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> Condition:
    """A condition; its transition time moves only when its status changes."""
    before = next((c for c in previous if c.type == type_), None)
    unchanged = before is not None and before.status == status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=_shorten(message),
        last_transition_time=before.last_transition_time
        if before is not None and unchanged
        else timestamp(now),
        observed_generation=generation,
    )


def with_condition(previous: Sequence[Condition], new: Condition) -> list[Condition]:
    """`previous` with `new` in place of the condition of its type (appended if absent)."""
    out = [new if c.type == new.type else c for c in previous]
    return out if any(c.type == new.type for c in previous) else [*out, new]


def meta_of(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def trimmed(body: Body, kind: str) -> dict[str, Any]:
    """The parts of an object the api models read (status and most metadata are not input)."""
    meta = meta_of(body)
    return {
        "apiVersion": names.API_VERSION,
        "kind": kind,
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": body.get("spec"),
    }


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """What to do for one RoutingPolicy."""

    config_map: dict[str, Any] | None
    """The ConfigMap to apply (without its owner reference); None keeps the last good one."""
    status: dict[str, Any]
    """To merge into the policy's status."""
    message: str
    """The Ready condition's message."""
    problems: tuple[Problem, ...]
    """Why the policy cannot be rendered; empty when it was."""

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        """The Ready condition's reason: Rendered or Invalid."""
        return "Invalid" if self.problems else "Rendered"


def _budgets_for(
    budgets: Iterable[Body], policy: RoutingPolicy
) -> tuple[list[FeatureBudget], list[Problem]]:
    """The budgets that fit `policy`, and a problem for each that does not."""
    usable: list[FeatureBudget] = []
    skipped: list[Problem] = []
    for body in sorted(budgets, key=lambda b: str(meta_of(b).get("name"))):
        where = f"FeatureBudget {meta_of(body).get('name')}"
        try:
            budget = FeatureBudget.model_validate(trimmed(body, names.KIND_FEATURE_BUDGET))
        except ValidationError as exc:
            skipped += problems_of(exc, f"{where}: ")
            continue
        problems = budget_problems(budget.spec, policy.spec, f"{where}: spec")
        if problems:
            skipped += problems
        else:
            usable.append(budget)
    return usable, skipped


def config_map_body(policy: str, namespace: str | None, text: str) -> dict[str, Any]:
    """The ConfigMap holding a rendered config under `names.CONFIG_MAP_KEY`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.config_map_name(policy),
            "namespace": namespace,
            "labels": {**MANAGED_BY, names.LABEL_POLICY: policy},
            "annotations": {names.ANNOTATION_CONFIG_HASH: config_hash(text)},
        },
        "data": {names.CONFIG_MAP_KEY: text},
    }


def _problem_list(problems: Sequence[Problem]) -> str:
    return "; ".join(str(p) for p in problems)


def _invalid(problems: Sequence[Problem]) -> str:
    return f"{len(problems)} problem(s), the last good config stays: {_problem_list(problems)}"


def _rendered(
    policy: RoutingPolicy, budgets: Iterable[Body], price_lookup: PriceLookup
) -> tuple[dict[str, Any] | None, list[Problem], str]:
    """(ConfigMap, problems, message): the ConfigMap is None when there are problems."""
    problems = policy_problems(policy.spec)
    usable, skipped = _budgets_for(budgets, policy)
    config = render_sidecar_config(policy, usable)
    if not problems:
        try:
            compile_runtime(config, env={}, price_lookup=price_lookup)
        except ConfigError as exc:
            problems = exc.problems
    if problems:
        return None, problems, _invalid(problems)
    config_map = config_map_body(
        policy.metadata.name, policy.metadata.namespace, config_text(config)
    )
    message = (
        f"rendered {len(policy.spec.routes)} route(s) and {len(usable)} FeatureBudget(s) "
        f"into ConfigMap {config_map['metadata']['name']}"
    )
    if skipped:
        message += f"; FeatureBudget(s) left out: {_problem_list(skipped)}"
    return config_map, [], message


def policy_outcome(
    policy: Body,
    budgets: Iterable[Body],
    *,
    price_lookup: PriceLookup,
    now: datetime,
    unmetered_pods: int | None = None,
) -> PolicyOutcome:
    """Render `policy` with the `budgets` of its namespace, or say why it cannot be.

    Checked beyond the CRD schema: references resolve, globs compile, every model has a price
    (`price_lookup`: the genai-prices catalog, unless the policy sets one). A budget that does
    not fit the policy (say, it downgrades to a model the policy lacks) is left out of the
    config and named in the message, so that one team's mistake does not freeze the policy.
    `unmetered_pods` (see `operator/unmetered.py`), when given, replaces the stored count.
    """
    generation = meta_of(policy).get("generation")
    previous = previous_status(RoutingPolicyStatus, policy.get("status"))
    try:
        parsed = RoutingPolicy.model_validate(trimmed(policy, names.KIND_ROUTING_POLICY))
    except ValidationError as exc:
        config_map, problems = None, problems_of(exc, "")
        message = _invalid(problems)
    else:
        config_map, problems, message = _rendered(parsed, budgets, price_lookup)
    ready = condition(
        previous.conditions,
        type_=READY,
        status="False" if problems else "True",
        reason="Invalid" if problems else "Rendered",  # as PolicyOutcome.reason
        message=message,
        now=now,
        generation=generation,
    )
    # Invalid: configMap, configHash and routes keep describing the last good config.
    status = previous.model_copy(
        update={
            "conditions": with_condition(previous.conditions, ready),
            "observed_generation": generation,
        }
        | ({} if unmetered_pods is None else {"unmetered_pods": unmetered_pods})
    )
    if config_map is not None:
        status = status.model_copy(
            update={
                "config_map": config_map["metadata"]["name"],
                "config_hash": config_map["metadata"]["annotations"][names.ANNOTATION_CONFIG_HASH],
                "routes": len(parsed.spec.routes),
            }
        )
    return PolicyOutcome(config_map, status_json(status), ready.message, tuple(problems))
