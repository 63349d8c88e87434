"""Pure: `SidecarConfig`, the one contract between the operator and the sidecar.

Written only by the operator (or `switchboard render`), read only by the sidecar. Versioned: a
sidecar refuses a version it does not know and keeps the config it has.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from switchboard.api.v1alpha1 import FeatureBudgetSpec, Label, Name, RoutingPolicySpec, Spec

CONFIG_VERSION = 1


class BudgetConfig(Spec):
    """A FeatureBudget as the sidecar enforces it."""

    name: Name
    spec: FeatureBudgetSpec


class SidecarConfig(Spec):
    """Everything a sidecar needs: the policy and the budgets beside it."""

    kind: Literal["SidecarConfig"] = "SidecarConfig"
    version: Literal[1] = 1
    policy: Name = Field(description="Name of the RoutingPolicy it was rendered from.")
    namespace: Label | None = Field(default=None, description="Namespace of that policy.")
    spec: RoutingPolicySpec
    budgets: list[BudgetConfig] = Field(default_factory=list)


class OperatorSettings(Spec):
    """How `switchboard operator` runs (from its command line; the chart passes the same)."""

    namespaces: list[Label] = Field(
        default_factory=list, description="Namespaces to serve; empty: every namespace."
    )
    budget_interval_seconds: float = Field(
        default=30, gt=0, le=3600, description="How often each FeatureBudget's spend is read."
    )
    ledger_url: str | None = Field(
        default=None,
        alias="ledgerURL",
        pattern=r"^rediss?://",
        description="Redis ledger to read budgets from, instead of the policies' redisURL.",
    )
    peering: Name | None = Field(
        default="switchboard",
        description="kopf peering object shared by the replicas (one acts); None: standalone.",
    )
    priority: int | None = Field(
        default=None,
        description="Peering priority; the highest live replica acts. Default: the oldest acts.",
    )
    peering_lifetime_seconds: int = Field(
        default=60, ge=1, le=3600, description="How long a silent replica still counts as live."
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address of the /metrics server.")
    metrics_port: int | None = Field(
        default=9090, ge=0, le=65535, description="Port of /metrics (0: any free); None: off."
    )
    liveness_endpoint: str | None = Field(
        default=None, description="kopf's liveness probe URL, e.g. http://0.0.0.0:8080/healthz."
    )
