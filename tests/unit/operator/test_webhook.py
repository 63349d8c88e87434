"""webhook: the kopf glue answers as podpatch decides, reads a policy missing from the index
from the API server, and fails open (or closed under failure policy Fail)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import kopf
import pytest

from switchboard.api import names
from switchboard.config.model import InjectorSettings, OperatorSettings
from switchboard.operator.metrics import OperatorMetrics
from switchboard.operator.webhook import inject

POLICY = {
    "metadata": {"name": "default", "namespace": "shop"},
    "spec": {"providers": [{"name": "openai", "apiKey": {"env": "KEY"}}]},
}


class Kube:
    def __init__(self, stored: dict[str, Any] | None = None, error: bool = False) -> None:
        self.stored, self.error, self.reads = stored, error, 0

    async def custom_object(self, plural: str, namespace: str, name: str) -> Any:
        self.reads += 1
        if self.error:
            raise kopf.TemporaryError("the API server is unreachable")
        return self.stored


class Memo:
    def __init__(self, kube: Kube, failure_policy: str = "Ignore") -> None:
        self.kube = kube
        self.metrics = OperatorMetrics()
        injector = InjectorSettings.model_validate({"failurePolicy": failure_policy})
        self.settings = OperatorSettings(injector=injector)

    def injected(self, result: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "switchboard_operator_injections_total", {"result": result}
        )


def pod() -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {"namespace": "shop", "annotations": {names.ANNOTATION_INJECT: "true"}},
            "spec": {"containers": [{"name": "app"}]},
        }
    )


async def admit(memo: Memo, index: dict[str, list[Any]]) -> tuple[dict[str, Any], list[str]]:
    body = pod()
    patch = kopf.Patch(body=body)
    warnings: list[str] = []
    await inject(
        body=body,
        namespace="shop",
        patch=patch,
        warnings=warnings,
        memo=memo,
        policies_by_namespace=index,
    )
    return jsonpatch.apply_patch(dict(body), patch.as_json_patch()), warnings


async def test_policy_from_the_index_is_injected_without_an_api_call() -> None:
    memo = Memo(Kube())
    patched, warnings = await admit(memo, {"shop": [POLICY]})
    assert [c["name"] for c in patched["spec"]["initContainers"]] == [names.SIDECAR_CONTAINER]
    assert (warnings, memo.kube.reads, memo.injected("Injected")) == ([], 0, 1)


async def test_policy_missing_from_the_index_is_read_from_the_api_server() -> None:
    memo = Memo(Kube(stored=POLICY))
    patched, warnings = await admit(memo, {})
    assert "initContainers" in patched["spec"]
    assert (warnings, memo.kube.reads) == ([], 1)


async def test_missing_policy_admits_unchanged_with_a_warning() -> None:
    memo = Memo(Kube(stored=None))
    patched, warnings = await admit(memo, {})
    assert patched == dict(pod())
    (warning,) = warnings
    assert "RoutingPolicy default does not exist in namespace shop" in warning
    assert memo.injected("PolicyMissing") == 1


async def test_unreadable_policy_admits_unchanged_with_a_warning() -> None:
    patched, warnings = await admit(Memo(Kube(error=True)), {})
    assert patched == dict(pod())
    assert "could not be read" in warnings[0]


async def test_missing_policy_is_refused_under_failure_policy_fail() -> None:
    with pytest.raises(kopf.AdmissionError, match="does not exist"):
        await admit(Memo(Kube(stored=None), failure_policy="Fail"), {})


async def test_an_unexpected_error_admits_unchanged_unless_the_policy_is_fail() -> None:
    memo = Memo(Kube())
    broken: dict[str, list[Any]] = {"shop": [None]}  # not a mapping: podpatch raises
    patched, warnings = await admit(memo, broken)
    assert patched == dict(pod())
    assert "the webhook failed" in warnings[0]
    assert memo.injected("Error") == 1
    with pytest.raises(kopf.AdmissionError, match="the webhook failed"):
        await admit(Memo(Kube(), failure_policy="Fail"), broken)
