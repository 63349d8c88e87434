"""Pure: pods that asked for the sidecar but run without it ("unmetered"), and how they are told.

The webhook's failure policy is Ignore by default, so a pod created while the webhook was down
(or before its RoutingPolicy existed) starts without the sidecar: its LLM traffic is neither
routed nor metered. Such a pod carries `switchboard.dev/inject: "true"` and has no container
named `names.SIDECAR_CONTAINER`. Pods that are done (Succeeded, Failed) or being deleted send no
more traffic and do not count.

Each is reported once with a Warning Event on the pod (named after the pod's uid, so a second
operator or a restart cannot repeat it), counted in its RoutingPolicy's `status.unmeteredPods`,
and in the operator's `switchboard_operator_unmetered_pods` gauge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchboard.api import names
from switchboard.config.model import InjectorSettings
from switchboard.operator import podpatch
from switchboard.operator.reconcile import Body, meta_of, timestamp

EVENT_REASON = "SidecarMissing"
DONE_PHASES = ("Succeeded", "Failed")


def is_unmetered(pod: Body) -> bool:
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return (
        podpatch.options_of(pod).inject
        and not podpatch.has_sidecar(pod)
        and phase not in DONE_PHASES
        and meta_of(pod).get("deletionTimestamp") is None
    )


def pod_policy(pod: Body, settings: InjectorSettings) -> str:
    return podpatch.policy_name(podpatch.options_of(pod), settings)


def event_name(pod: Body) -> str:
    """The same for the same pod (by uid); at most 253 characters."""
    meta = meta_of(pod)
    digest = hashlib.sha256(f"unmetered/{meta.get('uid', '')}".encode()).hexdigest()[:16]
    return f"{str(meta.get('name', ''))[:200]}.{digest}"


def event_message(pod: Body, policy: str, policy_exists: bool) -> str:
    meta = meta_of(pod)
    where = f"Pod {meta.get('namespace')}/{meta.get('name')}"
    why = (
        "it was probably created while the Switchboard webhook was unavailable"
        if policy_exists
        else f"RoutingPolicy {policy} does not exist in this namespace (or did not when the "
        "pod was created)"
    )
    fix = "" if policy_exists else f"create RoutingPolicy {policy}, then "
    return (
        f"{where} asks for the Switchboard sidecar ({names.ANNOTATION_INJECT}) but runs "
        f"without it: {why}. Its LLM traffic is neither routed nor metered; {fix}recreate the "
        "pod (e.g. kubectl rollout restart) to inject the sidecar."
    )


def unmetered_event(pod: Body, policy: str, policy_exists: bool, now: datetime) -> dict[str, Any]:
    """The Warning Event that reports an unmetered pod, on the pod."""
    meta = meta_of(pod)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(pod), "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "reason": EVENT_REASON,
        "message": event_message(pod, policy, policy_exists),
        "type": "Warning",
        "source": {"component": "switchboard-operator"},
        "reportingComponent": "switchboard.dev/operator",
        "reportingInstance": "switchboard-operator",
        "firstTimestamp": timestamp(now),
        "lastTimestamp": timestamp(now),
        "count": 1,
    }


@dataclass(frozen=True, slots=True)
class Report:
    """What to do after an event of an opted-in pod."""

    event: dict[str, Any] | None
    """The Event to create: the pod is unmetered and was not reported by this process yet."""
    counts: dict[str, int]
    """Unmetered pods per policy name, for the gauge: every policy of the namespace and the
    pod's own (which may not exist)."""
    statuses: dict[str, int]
    """`status.unmeteredPods` to write, per existing policy whose stored count differs."""
    remember: bool
    """The process should remember the pod as reported (it is, or is about to be)."""


def _stored_count(policy: Body) -> int | None:
    status = policy.get("status")
    count = status.get("unmeteredPods") if isinstance(status, Mapping) else None
    return count if isinstance(count, int) else None


def report(
    pod: Body,
    *,
    deleted: bool,
    reported: bool,
    policies: Sequence[Body],
    unmetered_by_policy: Mapping[str, int],
    settings: InjectorSettings,
    now: datetime,
) -> Report:
    """Decide after an event of an opted-in pod.

    `deleted`: the event is the pod's deletion; `reported`: this process reported the pod
    already; `policies`: the RoutingPolicies of its namespace as last seen;
    `unmetered_by_policy`: the unmetered pods of the namespace now, counted per policy name.
    """
    policy = pod_policy(pod, settings)
    existing = {str(meta_of(p).get("name")): p for p in policies}
    alive = is_unmetered(pod) and not deleted
    due = alive and not reported
    event = unmetered_event(pod, policy, policy in existing, now) if due else None
    counts = {name: unmetered_by_policy.get(name, 0) for name in {*existing, policy}}
    statuses = {
        name: counts[name] for name, body in existing.items() if _stored_count(body) != counts[name]
    }
    return Report(event, counts, statuses, remember=alive)
