"""Edge: the kopf handlers, and `register()`, which wires them into a registry.

A handler gathers its inputs (the body, the indexes, the ledger), asks `reconcile.py` or
`budgets.py` what should be, applies that through `kube.py`, and reports in `patch.status`.

- RoutingPolicy created, changed or found at start: render it with the FeatureBudgets of its
  namespace (from an index) into its ConfigMap, owned by it (so the garbage collector removes the
  ConfigMap with the policy). An invalid policy keeps its last good ConfigMap.
- FeatureBudget created, changed or deleted: re-render every policy of its namespace, since
  budgets reach the sidecars through the rendered config.
- FeatureBudget timer: read the ledger, write the status, deliver the alerts now due.
- Pods that opt in to the sidecar but run without it (`unmetered.py`) are indexed per namespace
  and policy; any event of an opted-in pod reports it once (an Event) and brings the counts of
  its namespace's policies (`status.unmeteredPods`, a gauge) up to date. Renders count too.
- With `--webhook-port`, the mutating webhook (`webhook.py`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from switchboard.api import names
from switchboard.config.model import OperatorSettings
from switchboard.operator import alerts, budgets, reconcile, startup, unmetered, webhook
from switchboard.operator.memo import Memo
from switchboard.operator.metrics import Kind
from switchboard.pricing.catalog import catalog_price

POLICIES = (names.GROUP, names.VERSION, names.PLURAL_ROUTING_POLICY)
BUDGETS = (names.GROUP, names.VERSION, names.PLURAL_FEATURE_BUDGET)
PODS = ("v1", "pods")
Unmetered = kopf.Index[tuple[str, str], str]
Handler = Callable[..., Awaitable[None]]


def counted(kind: Kind) -> Callable[[Handler], Handler]:
    """Count a handler's failures (kopf retries them) in the operator's metrics."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(**kwargs: Any) -> None:
            try:
                await handler(**kwargs)
            except kopf.PermanentError:
                raise  # an invalid object: counted as a reconcile result, not an error
            except Exception as exc:
                kwargs["memo"].metrics.failed(kind, exc)
                raise

        return run

    return wrap


def _snapshot(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Index value: a copy of the object (kopf reuses its bodies), keyed by its namespace."""
    raw = copy.deepcopy(dict(body))
    raw.get("metadata", {}).pop("managedFields", None)
    return {str(body.metadata.namespace): raw}


def policies_by_namespace(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return _snapshot(body)


def budgets_by_namespace(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return _snapshot(body)


def _alive(body: kopf.Body, **_: Any) -> bool:
    """Objects being deleted leave the indexes at once, before their deletion handlers run."""
    return body.metadata.deletion_timestamp is None


def unmetered_pods(body: kopf.Body, memo: Memo, **_: Any) -> dict[tuple[str, str], str]:
    """Index value: the pod's name, keyed by its namespace and policy."""
    policy = unmetered.pod_policy(body, memo.settings.injector)
    return {(str(body.metadata.namespace), policy): str(body.metadata.name)}


def _unmetered(body: kopf.Body, **_: Any) -> bool:
    return unmetered.is_unmetered(body)


def _counts(index: Unmetered, namespace: str) -> dict[str, int]:
    return {policy: len(pods) for (ns, policy), pods in index.items() if ns == namespace}


async def _render(
    policy: reconcile.Body,
    budget_bodies: Iterable[reconcile.Body],
    memo: Memo,
    unmetered_pods: Unmetered,
) -> reconcile.PolicyOutcome:
    now = datetime.now(UTC)
    namespace, name = (str(reconcile.meta_of(policy).get(k)) for k in ("namespace", "name"))
    outcome = reconcile.policy_outcome(
        policy,
        budget_bodies,
        price_lookup=catalog_price,
        now=now,
        unmetered_pods=_counts(unmetered_pods, namespace).get(name, 0),
    )
    if outcome.config_map is not None:
        kopf.adopt(outcome.config_map, owner=kopf.Body(cast(kopf.RawBody, dict(policy))))
        await memo.kube.apply_config_map(outcome.config_map)
    memo.metrics.reconciled("RoutingPolicy", outcome.reason)
    return outcome


@counted("RoutingPolicy")
async def policy_changed(
    body: kopf.Body,
    namespace: str,
    name: str,
    memo: Memo,
    budgets_by_namespace: kopf.Index[str, dict[str, Any]],
    unmetered_pods: Unmetered,
    **_: Any,
) -> None:
    # Status is written under the lock, not through kopf's deferred patch: a budget handler
    # re-rendering meanwhile must not have its newer configHash overwritten by this older one.
    async with memo.namespace_lock(namespace):
        outcome = await _render(body, budgets_by_namespace.get(namespace, []), memo, unmetered_pods)
        await memo.kube.patch_status(names.PLURAL_ROUTING_POLICY, namespace, name, outcome.status)
    if not outcome.valid:
        raise kopf.PermanentError(outcome.message)


@counted("FeatureBudget")
async def budget_changed(
    namespace: str,
    memo: Memo,
    policies_by_namespace: kopf.Index[str, dict[str, Any]],
    budgets_by_namespace: kopf.Index[str, dict[str, Any]],
    unmetered_pods: Unmetered,
    **_: Any,
) -> None:
    async with memo.namespace_lock(namespace):
        for policy in list(policies_by_namespace.get(namespace, [])):
            outcome = await _render(
                policy, budgets_by_namespace.get(namespace, []), memo, unmetered_pods
            )
            name = str(reconcile.meta_of(policy).get("name"))
            await memo.kube.patch_status(
                names.PLURAL_ROUTING_POLICY, namespace, name, outcome.status
            )


@counted("FeatureBudget")
async def budget_timer(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    memo: Memo,
    policies_by_namespace: kopf.Index[str, dict[str, Any]],
    **_: Any,
) -> None:
    now = datetime.now(UTC)
    # Alerts of record come from the stored status, never from a watch event that may lag.
    stored = await memo.kube.status_of(names.PLURAL_FEATURE_BUDGET, namespace, name)
    if stored is None:
        return
    parsed = budgets.parse_budget({**body, "status": stored})
    url = budgets.ledger_url(memo.settings.ledger_url, policies_by_namespace.get(namespace, []))
    outcome = budgets.budget_outcome(parsed, await memo.ledgers.reading(url, parsed, now), now=now)
    memo.metrics.reconciled("FeatureBudget", outcome.reason)
    if outcome.due:  # recorded before delivered: see operator/budgets.py
        await memo.kube.patch_status(
            names.PLURAL_FEATURE_BUDGET, namespace, name, reconcile.status_json(outcome.status)
        )
    status = await alerts.deliver(parsed, outcome, memo, now)
    patch.status.update(reconcile.status_json(status))


async def _count(namespace: str, found: unmetered.Report, memo: Memo) -> None:
    for policy, count in found.statuses.items():
        await memo.kube.patch_status(
            names.PLURAL_ROUTING_POLICY, namespace, policy, {"unmeteredPods": count}
        )
    for policy, count in found.counts.items():
        memo.metrics.unmetered(namespace, policy, count)


async def pod_seen(
    body: kopf.Body,
    type: str,
    memo: Memo,
    policies_by_namespace: kopf.Index[str, dict[str, Any]],
    unmetered_pods: Unmetered,
    **_: Any,
) -> None:
    namespace, uid = str(body.metadata.namespace), str(body.metadata.uid)
    async with memo.namespace_lock(namespace):  # counts are computed and written in order
        found = unmetered.report(
            body,
            deleted=type == "DELETED",
            reported=uid in memo.reported,
            policies=list(policies_by_namespace.get(namespace, [])),
            unmetered_by_policy=_counts(unmetered_pods, namespace),
            settings=memo.settings.injector,
            now=datetime.now(UTC),
        )
        await _count(namespace, found, memo)
    if found.event is not None:
        await memo.kube.create_event(found.event)
    (memo.reported.add if found.remember else memo.reported.discard)(uid)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Wire every handler into `registry`; the budget timer runs every configured interval."""
    kopf.on.login(registry=registry)(kopf.login_via_async_client)
    kopf.on.startup(registry=registry)(startup.configure)
    kopf.index(*POLICIES, when=_alive, registry=registry)(policies_by_namespace)
    kopf.index(*BUDGETS, when=_alive, registry=registry)(budgets_by_namespace)
    kopf.on.resume(*POLICIES, id="policy-resumed", registry=registry)(policy_changed)
    kopf.on.create(*POLICIES, id="policy-created", registry=registry)(policy_changed)
    kopf.on.update(*POLICIES, id="policy-updated", registry=registry)(policy_changed)
    kopf.on.create(*BUDGETS, id="budget-created", registry=registry)(budget_changed)
    kopf.on.update(*BUDGETS, id="budget-updated", field="spec", registry=registry)(budget_changed)
    kopf.on.delete(*BUDGETS, id="budget-deleted", optional=True, registry=registry)(budget_changed)
    kopf.timer(*BUDGETS, interval=settings.budget_interval_seconds, registry=registry)(budget_timer)
    opted_in = {names.ANNOTATION_INJECT: "true"}
    kopf.index(*PODS, annotations=opted_in, when=_unmetered, registry=registry)(unmetered_pods)
    # Any value: a pod whose annotation changed from "true" leaves its count too.
    # kopf types event handlers without index kwargs; it passes them like to any handler.
    present = {names.ANNOTATION_INJECT: kopf.PRESENT}
    on_pod_event = kopf.on.event(*PODS, annotations=present, registry=registry)
    on_pod_event(cast(Any, pod_seen))
    if settings.webhook_port is not None:
        webhook.register(registry)
