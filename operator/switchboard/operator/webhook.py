"""Edge: the mutating admission webhook that injects the sidecar (kopf.on.mutate on Pod CREATE).

Served by kopf over HTTPS (see `startup.py`) at the path `names.WEBHOOK_INJECT_PATH` (`/inject`):
`https://<service>:<port>/inject`. The API server calls it only for opted-in pods (the chart's
MutatingWebhookConfiguration has a matchConditions rule on `switchboard.dev/inject`); kopf's own
annotation filter makes sure of it.

The handler gathers the pod's options, its RoutingPolicy (from the operator's index; when the
index does not hold it, from the API server: a standby replica, paused by peering, does not
watch, and a replica just started may not have listed yet) and the injector settings; asks
`podpatch.injection` what to do; and hands the JSON patch to kopf.

It never creates anything (the webhook declares `sideEffects: None`): a pod admitted without the
sidecar is reported with an Event once it exists, by the unmetered-pod handler in `handlers.py`.
It fails open like the webhook's failure policy: an unexpected error admits the pod unchanged
with a warning (failure policy Ignore), or refuses it (Fail).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import jsonpatch
import kopf

from switchboard.api import names
from switchboard.operator import podpatch
from switchboard.operator.memo import Memo

log = logging.getLogger("switchboard.operator.webhook")
Handler = Callable[..., Awaitable[None]]


def _apply(ops: Sequence[podpatch.PatchOp], body: kopf.RawBody) -> None:
    """kopf diffs the body before and after this to answer the API server."""
    jsonpatch.apply_patch(body, list(ops), in_place=True)


async def _policy(
    namespace: str, name: str, index: kopf.Index[str, dict[str, Any]], memo: Memo
) -> podpatch.PolicyInfo | podpatch.PolicyMissing:
    found = podpatch.find_policy(index.get(namespace, []), name)
    if found is None:
        try:
            found = await memo.kube.custom_object(names.PLURAL_ROUTING_POLICY, namespace, name)
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            return podpatch.PolicyMissing(name, f"could not be read ({exc})")
    if found is None:
        return podpatch.PolicyMissing(name, f"does not exist in namespace {namespace}")
    return podpatch.policy_info(found)


def fail_open(handler: Handler) -> Handler:
    """An unexpected error is not a refusal unless the failure policy is Fail."""

    @functools.wraps(handler)
    async def run(**kwargs: Any) -> None:
        try:
            await handler(**kwargs)
        except kopf.AdmissionError:
            raise
        except Exception as exc:
            log.exception("the sidecar injection failed")
            memo: Memo = kwargs["memo"]
            memo.metrics.injected("Error")
            kwargs["patch"].clear()
            message = f"switchboard: sidecar not injected: the webhook failed ({exc!r})"
            if memo.settings.injector.failure_policy == "Fail":
                raise kopf.AdmissionError(message, code=500) from exc
            kwargs["warnings"].append(message)

    return run


@fail_open
async def inject(
    body: kopf.Body,
    namespace: str,
    patch: kopf.Patch,
    warnings: list[str],
    memo: Memo,
    policies_by_namespace: kopf.Index[str, dict[str, Any]],
    **_: Any,
) -> None:
    settings = memo.settings.injector
    options = podpatch.options_of(body)
    name = podpatch.policy_name(options, settings)
    policy = await _policy(namespace, name, policies_by_namespace, memo)
    decision = podpatch.injection(body, options, policy, settings)
    memo.metrics.injected(decision.result)
    warnings.extend(decision.warnings)
    if decision.refuse:
        raise kopf.AdmissionError("; ".join(decision.warnings), code=400)
    patch.fns.append(functools.partial(_apply, decision.patch))


def register(registry: kopf.OperatorRegistry) -> None:
    """Wire the webhook handler; its id is the URL path (`names.WEBHOOK_INJECT_PATH`)."""
    kopf.on.mutate(
        "v1",
        "pods",
        id=names.WEBHOOK_INJECT_ID,
        operations=["CREATE"],
        annotations={names.ANNOTATION_INJECT: "true"},
        side_effects=False,
        ignore_failures=True,
        registry=registry,
    )(inject)
