"""handlers: failures are counted (an invalid object is not a failure), wiring is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest

from switchboard.api import names
from switchboard.config.model import OperatorSettings
from switchboard.operator.handlers import counted, register
from switchboard.operator.metrics import OperatorMetrics


class Memo:
    def __init__(self) -> None:
        self.metrics = OperatorMetrics()


def errors(memo: Memo, error: str) -> float | None:
    return memo.metrics.registry.get_sample_value(
        "switchboard_operator_errors_total", {"kind": "RoutingPolicy", "error": error}
    )


async def test_a_failing_handler_is_counted_and_still_fails() -> None:
    @counted("RoutingPolicy")
    async def handler(**_: Any) -> None:
        raise kopf.TemporaryError("the API server is unreachable")

    memo = Memo()
    with pytest.raises(kopf.TemporaryError):
        await handler(memo=memo)
    assert errors(memo, "TemporaryError") == 1


async def test_an_invalid_object_is_not_counted_as_an_error() -> None:
    @counted("RoutingPolicy")
    async def handler(**_: Any) -> None:
        raise kopf.PermanentError("spec.routes: ...")

    memo = Memo()
    with pytest.raises(kopf.PermanentError):
        await handler(memo=memo)
    assert errors(memo, "PermanentError") is None


def test_register_wires_the_timer_at_the_configured_interval() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings(budget_interval_seconds=2.5))
    timers = list(registry._spawning.get_all_handlers())
    assert [(t.id, t.interval) for t in timers] == [("budget_timer", 2.5)]
    changing = sorted(h.id for h in registry._changing.get_all_handlers())
    assert changing == [
        "budget-created",
        "budget-deleted",
        "budget-updated/spec",
        "policy-created",
        "policy-resumed",
        "policy-updated",
    ]
    indexes = sorted(h.id for h in registry._indexing.get_all_handlers())
    assert indexes == ["budgets_by_namespace", "policies_by_namespace", "unmetered_pods"]
    assert [h.id for h in registry._watching.get_all_handlers()] == ["pod_seen"]
    assert list(registry._webhooks.get_all_handlers()) == []


def test_register_wires_the_webhook_only_when_it_is_served(tmp_path: Path) -> None:
    registry = kopf.OperatorRegistry()
    tls = {"webhook_cert": tmp_path / "tls.crt", "webhook_key": tmp_path / "tls.key"}
    register(registry, OperatorSettings(webhook_port=9443, **tls))
    (hook,) = registry._webhooks.get_all_handlers()
    assert hook.id == names.WEBHOOK_INJECT_ID == names.WEBHOOK_INJECT_PATH.lstrip("/")
    assert (hook.operations, hook.side_effects) == (["CREATE"], False)
