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
