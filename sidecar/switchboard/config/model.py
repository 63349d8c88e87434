"""Pure: `SidecarConfig`, the one contract between the operator and the sidecar; and the
settings of the operator (`OperatorSettings`) and of its sidecar injection (`InjectorSettings`).

SidecarConfig is written only by the operator (or `switchboard render`), read only by the
sidecar. Versioned: a sidecar refuses a version it does not know and keeps the config it has.
InjectorSettings is a versioned file too, read by the operator at start (`--injector-config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from switchboard.api import names
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


Quantity = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$",
        description="A Kubernetes quantity, e.g. 100m, 128Mi.",
    ),
]
Port = Annotated[int, Field(ge=1, le=65535)]
AbsolutePath = Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=1024)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ResourceList(Spec):
    cpu: Quantity | None = Field(default=None, description="CPU, e.g. 50m.")
    memory: Quantity | None = Field(default=None, description="Memory, e.g. 128Mi.")


class Resources(Spec):
    """The sidecar container's resources. No CPU limit by default: throttling adds latency."""

    requests: ResourceList = Field(
        default_factory=lambda: ResourceList(cpu="50m", memory="96Mi"),
        description="Scheduled for each injected pod.",
    )
    limits: ResourceList = Field(
        default_factory=lambda: ResourceList(memory="384Mi"), description="Hard limits."
    )


class InjectorSettings(Spec):
    """How the webhook injects the sidecar: a versioned file (`--injector-config`), which the
    chart renders into a ConfigMap. Every field has a default, so the file is optional."""

    kind: Literal["InjectorSettings"] = "InjectorSettings"
    version: Literal[1] = 1
    image: str = Field(
        default="switchboard:latest", min_length=1, description="The sidecar's image."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    command: list[str] = Field(
        default_factory=lambda: ["switchboard"],
        min_length=1,
        description="The image's `switchboard` command; `sidecar ...` arguments follow.",
    )
    port: Port = Field(
        default=names.DEFAULT_PORT,
        description="Where the sidecar serves the OpenAI API on 127.0.0.1 (OPENAI_BASE_URL).",
    )
    metrics_port: Port = Field(
        default=9464,
        description="Where the sidecar serves /metrics, /healthz and /readyz on every address "
        "(probes come from the kubelet, not from 127.0.0.1).",
    )
    resources: Resources = Field(default_factory=Resources)
    run_as_user: int = Field(default=65532, ge=1, description="The sidecar's non-root uid.")
    run_as_group: int = Field(default=65532, ge=1, description="The sidecar's gid.")
    config_dir: AbsolutePath = Field(
        default="/etc/switchboard", description="Where the policy's ConfigMap is mounted."
    )
    outbox_dir: AbsolutePath = Field(
        default="/var/lib/switchboard",
        description="An emptyDir for the ledger outbox (records kept while Redis is away).",
    )
    outbox_size_limit: Quantity = Field(default="64Mi", description="Size limit of that emptyDir.")
    default_policy: Name = Field(
        default="default",
        description=f"RoutingPolicy used when a pod has no {names.ANNOTATION_POLICY} annotation.",
    )
    failure_policy: Literal["Ignore", "Fail"] = Field(
        default="Ignore",
        description="What the webhook does when it cannot inject (missing policy, a conflict, "
        "an error): Ignore admits the pod without the sidecar and warns; Fail refuses it. "
        "Keep it equal to the MutatingWebhookConfiguration's failurePolicy.",
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict,
        description="Extra environment of the sidecar (e.g. SWITCHBOARD_LOG_LEVEL, OTLP settings).",
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> InjectorSettings:
        if self.port == self.metrics_port:
            raise ValueError("port and metricsPort must differ")
        return self


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
    webhook_host: str = Field(default="0.0.0.0", description="Address of the webhook server.")
    webhook_port: Port | None = Field(
        default=None,
        description="Port of the HTTPS admission webhook server (path "
        f"{names.WEBHOOK_INJECT_PATH}); None: no webhook.",
    )
    webhook_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) the webhook serves; re-read on change."
    )
    webhook_key: Path | None = Field(default=None, description="PEM private key of that cert.")
    injector: InjectorSettings = Field(default_factory=InjectorSettings)

    @model_validator(mode="after")
    def _webhook_has_tls(self) -> OperatorSettings:
        tls = self.webhook_cert is not None and self.webhook_key is not None
        if self.webhook_port is not None and not tls:
            raise ValueError("the webhook needs --webhook-cert and --webhook-key (TLS)")
        return self
