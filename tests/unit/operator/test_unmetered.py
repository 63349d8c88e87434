"""unmetered: which opted-in pods run without the sidecar, the Event, and the counts to write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.api import names
from switchboard.config.model import InjectorSettings
from switchboard.operator.unmetered import event_name, is_unmetered, report

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = InjectorSettings()


def pod(
    *, inject: str | None = "true", sidecar: bool = False, phase: str = "Running", **meta: Any
) -> dict[str, Any]:
    annotations = {} if inject is None else {names.ANNOTATION_INJECT: inject}
    containers = [{"name": "app"}]
    init = [{"name": names.SIDECAR_CONTAINER, "restartPolicy": "Always"}] if sidecar else []
    return {
        "metadata": {
            "name": "chat-1",
            "namespace": "shop",
            "uid": "uid-1",
            "annotations": {**annotations, **meta.pop("annotations", {})},
            **meta,
        },
        "spec": {"initContainers": init, "containers": containers},
        "status": {"phase": phase},
    }


def policy(name: str, stored: int | None = None) -> dict[str, Any]:
    status = {} if stored is None else {"unmeteredPods": stored}
    return {"metadata": {"name": name, "namespace": "shop"}, "status": status}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (pod(), True),
        (pod(phase="Pending"), True),
        (pod(sidecar=True), False),
        (pod(inject="false"), False),
        (pod(inject=None), False),
        (pod(phase="Succeeded"), False),
        (pod(phase="Failed"), False),
        (pod(deletionTimestamp="2026-11-25T12:00:00Z"), False),
    ],
    ids=["running", "pending", "injected", "false", "unannotated", "done", "failed", "deleting"],
)
def test_unmetered_means_opted_in_without_sidecar_and_alive(
    body: dict[str, Any], expected: bool
) -> None:
    assert is_unmetered(body) is expected


def decide(body: dict[str, Any], **kwargs: Any) -> Any:
    given: dict[str, Any] = {
        "deleted": False,
        "reported": False,
        "policies": [policy("default")],
        "unmetered_by_policy": {"default": 1},
        "settings": SETTINGS,
        "now": NOW,
    }
    return report(body, **{**given, **kwargs})


def test_unmetered_pod_is_reported_once_on_itself() -> None:
    found = decide(pod())
    assert found.event is not None
    event = found.event
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "chat-1",
        "namespace": "shop",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"]) == ("Warning", "SidecarMissing")
    assert "webhook was unavailable" in event["message"]
    assert "rollout restart" in event["message"]
    assert found.remember
    assert decide(pod(), reported=True).event is None
    assert decide(pod(), reported=True).remember
    deleted = decide(pod(), reported=True, deleted=True)
    assert (deleted.event, deleted.remember) == (None, False)
    assert decide(pod(sidecar=True)).event is None


def test_missing_policy_is_named_in_the_event_and_counted_for_the_gauge_only() -> None:
    body = pod(annotations={names.ANNOTATION_POLICY: "eu"})
    found = decide(body, unmetered_by_policy={"eu": 1})
    assert found.event is not None
    assert "RoutingPolicy eu does not exist" in found.event["message"]
    assert found.counts == {"default": 0, "eu": 1}
    assert found.statuses == {"default": 0}


def test_status_is_written_only_where_the_stored_count_differs() -> None:
    policies = [policy("default", stored=2), policy("batch", stored=0), policy("eu", stored=5)]
    found = decide(pod(), policies=policies, unmetered_by_policy={"default": 2, "eu": 1})
    assert found.counts == {"default": 2, "batch": 0, "eu": 1}
    assert found.statuses == {"eu": 1}


def test_event_name_is_stable_per_uid_and_short_enough() -> None:
    assert event_name(pod()) == event_name(pod())
    assert event_name(pod()) != event_name(pod(uid="uid-2"))
    assert len(event_name(pod(name="x" * 253))) <= 253
