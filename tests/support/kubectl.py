"""kubectl helpers for the cluster tier: bounded waits, JSON reads, applying documents."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from switchboard.devcluster import LocalCluster

T = TypeVar("T")
DEADLINE_SECONDS = 30.0


def wait_for(what: str, check: Callable[[], T | None], timeout: float = DEADLINE_SECONDS) -> T:
    """Poll `check` until it returns something truthy (returned); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {value!r})")
        time.sleep(0.1)


def ok(kube: LocalCluster, *args: str, input: str | None = None) -> str:
    result = kube.kubectl(*args, input=input)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def apply(kube: LocalCluster, *documents: Mapping[str, Any]) -> None:
    ok(kube, "apply", "-f", "-", input=yaml.safe_dump_all([dict(d) for d in documents]))


def get(kube: LocalCluster, namespace: str, *what: str) -> dict[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    result = kube.kubectl("-n", namespace, "get", *what, "-o", "json")
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any]:
    """The condition of that type in an object's status ({} when absent)."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}
