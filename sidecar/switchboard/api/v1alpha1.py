"""Pure: the RoutingPolicy and FeatureBudget resources (switchboard.dev/v1alpha1).

These pydantic models are the single source of truth: the CRD schemas in `crds/` are generated
from them, the sidecar reads the same manifests, and `switchboard validate` checks them.
Structural rules live in the fields; rules across fields live in `api/problems.py`, so that every
error can be reported with its own path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from switchboard.api import names

Name = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"),
]
Label = Annotated[str, Field(min_length=1, max_length=253)]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
TrafficClass = Literal["realtime", "batch", "critical"]
Strategy = Literal["fixed", "weighted", "cheapest", "fastest", "cascade"]
Period = Literal["daily", "weekly", "monthly"]
ThresholdAction = Literal["alert", "downgrade", "block"]
# Bounds of the lists that CEL rules iterate over: the API server refuses a CRD whose rules it
# cannot bound in cost (256 models are ~70 % of the budget of the model-name rule).
MAX_PROVIDERS = 64
MAX_MODELS = 256
MAX_ROUTES = 128
MAX_TARGETS = 16
MAX_THRESHOLDS = 16


def _rule(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    out: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


def _cel(*rules: JsonDict) -> JsonDict:
    """Rules across fields that the API server checks (CEL `x-kubernetes-validations` in crds/).

    pydantic does not run them (except where a model validator says so): `api/problems.py`
    holds the same rules for the sidecar, the operator and `switchboard validate`.
    """
    validations: list[JsonValue] = [*rules]
    return {"x-kubernetes-validations": validations}


def _unique_names(what: str) -> JsonDict:
    return _cel(
        _rule("self.all(a, self.exists_one(b, b.name == a.name))", f"{what} names must be unique")
    )


class Spec(BaseModel):
    """Base of every spec model: camelCase on the wire, immutable, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        serialize_by_alias=True,
    )


class SecretKeyRef(Spec):
    """A key in a Secret in the policy's namespace."""

    name: Name = Field(description="Name of the Secret.")
    key: Label = Field(description="Key within the Secret.")


class ApiKeySource(Spec):
    """Where a provider's API key comes from: a Secret (handed over as env) or an env var."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            _rule(
                "has(self.secretKeyRef) != has(self.env)", "set exactly one of secretKeyRef or env"
            )
        )
    )

    secret_key_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding the key; the webhook hands it to the sidecar."
    )
    env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of an environment variable of the sidecar holding the key.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeySource:
        if (self.secret_key_ref is None) == (self.env is None):
            raise ValueError("set exactly one of secretKeyRef or env")
        return self

    def env_var(self, provider: str) -> str:
        """The env var the sidecar reads this key from."""
        return self.env if self.env is not None else names.provider_key_env(provider)


class Provider(Spec):
    """An upstream that speaks an LLM API."""

    name: Name = Field(description="Name that models refer to.")
    base_url: str = Field(
        alias="baseURL",
        pattern=r"^https?://[^\s]+$",
        description="Base URL of the API, including the version path (e.g. https://api.openai.com/v1).",
    )
    api: Literal["openai"] = Field(default="openai", description="Wire schema the provider speaks.")
    api_key: ApiKeySource | None = Field(
        default=None,
        description="API key, sent as a Bearer token. Absent: no Authorization header.",
    )
    region: Label | None = Field(
        default=None, description="Data-residency tag of where this provider processes data."
    )
    timeout_seconds: float = Field(
        default=60, gt=0, le=3600, description="Whole-request timeout of one attempt."
    )
    connect_timeout_seconds: float = Field(
        default=5, gt=0, le=600, description="Timeout to establish a connection."
    )
    first_byte_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Timeout until the response headers arrive (streams: the first byte). "
        "Defaults to timeoutSeconds.",
    )
    price_catalog_id: str | None = Field(
        default=None,
        description="Provider id in the genai-prices catalog (defaults to the provider name, "
        "then to a lookup by model alone).",
    )


class Price(Spec):
    """USD per million tokens; overrides the genai-prices catalog."""

    input_per_m_tok: Money = Field(alias="inputPerMTok", description="USD per 1M input tokens.")
    output_per_m_tok: Money = Field(
        default=Decimal(0), alias="outputPerMTok", description="USD per 1M output tokens."
    )
    cached_input_per_m_tok: Money | None = Field(
        default=None,
        alias="cachedInputPerMTok",
        description="USD per 1M cached input tokens (defaults to the input price).",
    )


class Model(Spec):
    """A model offered by a provider."""

    name: Label = Field(
        description="Model id clients and routes use; sent upstream unless upstreamModel is set."
    )
    provider: Name = Field(description="Name of the provider serving it.")
    upstream_model: Label | None = Field(
        default=None, description="Model id sent to the provider, when it differs from name."
    )
    type: Literal["chat", "embedding"] = Field(default="chat", description="What the model does.")
    price: Price | None = Field(default=None, description="Price override; default: genai-prices.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")


class RouteMatch(Spec):
    """Conditions of a route; all present conditions must hold, a list matches any of its items."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            _rule(
                "!has(self.minPromptTokens) || !has(self.maxPromptTokens)"
                " || self.minPromptTokens <= self.maxPromptTokens",
                "must be at most maxPromptTokens",
                ".minPromptTokens",
            )
        )
    )

    features: list[Label] | None = Field(default=None, description="Features (pod or header).")
    teams: list[Label] | None = Field(default=None, description="Teams (pod or header).")
    tasks: list[Label] | None = Field(default=None, description="X-Switchboard-Task values.")
    requested_models: list[Label] | None = Field(
        default=None, description="Globs on the model the application asked for."
    )
    traffic_class: list[TrafficClass] | None = Field(
        default=None, description="X-Switchboard-Class values."
    )
    regions: list[Label] | None = Field(default=None, description="X-Switchboard-Region values.")
    max_prompt_tokens: int | None = Field(
        default=None, ge=0, description="Matches when the estimated prompt is at most this long."
    )
    min_prompt_tokens: int | None = Field(
        default=None, ge=0, description="Matches when the estimated prompt is at least this long."
    )


class Target(Spec):
    """A model a route may send to."""

    model: Label = Field(description="Name of a model of this policy.")
    weight: int = Field(default=1, ge=0, le=10000, description="Relative share for `weighted`.")


class Retry(Spec):
    """Retries of one target before moving to the next."""

    attempts: int = Field(
        default=2, ge=1, le=10, description="Tries per target, the first included."
    )
    backoff_ms: int = Field(default=200, ge=0, le=60000, description="First backoff; doubles.")
    max_backoff_ms: int = Field(default=5000, ge=0, le=600000, description="Backoff ceiling.")


class Cache(Spec):
    """Response cache of a route."""

    mode: Literal["off", "exact"] = Field(default="off", description="exact: identical requests.")
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 86400, description="Entry lifetime.")
    max_entries: int = Field(default=1000, ge=1, le=1_000_000, description="Entries kept at most.")


class QualityGate(Spec):
    """What a `cascade` step's answer must satisfy to be accepted."""

    min_length: int = Field(default=1, ge=0, description="Minimum characters of the answer.")
    reject_refusals: bool = Field(default=True, description="Escalate on refusals.")
    require_json: bool | None = Field(
        default=None,
        description="Escalate unless the answer is valid JSON; default: when response_format asks.",
    )


class Route(Spec):
    """Where matching requests go; routes are tried in order and the first match wins."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            _rule(
                "self.strategy != 'weighted' || self.targets.exists(t, t.weight > 0)",
                "weighted strategy needs a positive weight",
                ".targets",
            )
        )
    )

    name: Name = Field(description="Route name, reported in headers and metrics.")
    match: RouteMatch | None = Field(
        default=None,
        description="Conditions, all of which must hold; a list matches any of its items. "
        "Absent: matches every request.",
    )
    strategy: Strategy = Field(default="fixed", description="How targets are ordered.")
    targets: list[Target] = Field(
        min_length=1, max_length=MAX_TARGETS, description="Models to send to."
    )
    fallback: list[Target] = Field(
        default_factory=list,
        max_length=MAX_TARGETS,
        description="Tried in order after every target failed.",
    )
    retry: Retry = Field(default_factory=Retry, description="Retries per target.")
    cache: Cache = Field(default_factory=Cache, description="Response cache.")
    quality_gate: QualityGate = Field(
        default_factory=QualityGate, description="Acceptance test of `cascade` answers."
    )


class CircuitBreaker(Spec):
    """Per-target circuit breaker."""

    failure_threshold: int = Field(default=5, ge=1, le=1000, description="Failures in a row.")
    cooldown_seconds: float = Field(default=30, gt=0, le=3600, description="Time before a probe.")


class Ledger(Spec):
    """Where spend is recorded."""

    redis_url: str | None = Field(
        default=None,
        alias="redisURL",
        pattern=r"^rediss?://",
        description="Shared Redis ledger; absent: in memory, per sidecar.",
    )


class Attribution(Spec):
    """How requests are attributed to a feature and team."""

    allow_header_override: bool = Field(
        default=True,
        description="Let requests name their feature and team with X-Switchboard-* headers.",
    )
    default_feature: Label = Field(default="unattributed", description="When nothing names one.")


class Limits(Spec):
    """Limits on requests the sidecar accepts."""

    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="Larger bodies: 413."
    )
    default_max_output_tokens: int = Field(
        default=4096, ge=1, description="Output tokens assumed when a request sets no max_tokens."
    )


class Telemetry(Spec):
    """What the sidecar reports."""

    capture_content: bool = Field(
        default=False, description="Put prompts and completions in spans (off by default)."
    )


class RoutingPolicySpec(Spec):
    """Providers, models, routes and the rules around them."""

    providers: list[Provider] = Field(
        min_length=1,
        max_length=MAX_PROVIDERS,
        description="Upstream APIs.",
        json_schema_extra=_unique_names("provider"),
    )
    models: list[Model] = Field(
        min_length=1,
        max_length=MAX_MODELS,
        description="Models on offer.",
        json_schema_extra=_unique_names("model"),
    )
    routes: list[Route] = Field(
        min_length=1,
        max_length=MAX_ROUTES,
        description="First match wins.",
        json_schema_extra=_unique_names("route"),
    )
    data_residency: dict[str, list[Label]] = Field(
        default_factory=dict,
        description="User region -> provider regions its requests may reach.",
    )
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    ledger: Ledger = Field(default_factory=Ledger)
    attribution: Attribution = Field(default_factory=Attribution)
    limits: Limits = Field(default_factory=Limits)
    telemetry: Telemetry = Field(default_factory=Telemetry)


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata Switchboard reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Name
    namespace: str | None = None
    generation: int | None = None


class Threshold(Spec):
    """An action taken when spend reaches a share of the limit."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            _rule(
                "self.action != 'downgrade' || has(self.downgradeTo)",
                "downgrade needs downgradeTo",
                ".downgradeTo",
            ),
            _rule(
                "self.action == 'downgrade' || !has(self.downgradeTo)",
                "only a downgrade takes downgradeTo",
                ".downgradeTo",
            ),
        )
    )

    percent: Decimal = Field(gt=0, le=1000, description="Share of limitUSD, in percent.")
    action: ThresholdAction = Field(description="alert | downgrade | block.")
    downgrade_to: Label | None = Field(
        default=None, description="Model or route to use instead (action downgrade)."
    )


class BudgetAlerts(Spec):
    """Where threshold alerts go."""

    webhook_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding a Slack-compatible webhook URL."
    )
    events: bool = Field(default=True, description="Emit Kubernetes Events.")


class FeatureBudgetSpec(Spec):
    """A spend limit for one feature over a UTC calendar period."""

    feature: Label = Field(description="Feature the budget covers.")
    team: Label | None = Field(default=None, description="Team owning the feature.")
    limit_usd: Money = Field(alias="limitUSD", description="Limit in USD per period.")
    period: Period = Field(description="daily | weekly (ISO, Monday) | monthly, UTC.")
    thresholds: list[Threshold] = Field(
        default_factory=list,
        max_length=MAX_THRESHOLDS,
        description="Actions by share of the limit, in strictly ascending percents.",
        json_schema_extra=_cel(
            _rule(
                "self.map(t, t.percent).isSorted()"
                " && self.all(a, self.exists_one(b, b.percent == a.percent))",
                "percents must be strictly ascending",
            )
        ),
    )
    alerts: BudgetAlerts = Field(default_factory=BudgetAlerts)


class Condition(Spec):
    """A Kubernetes-style status condition."""

    type: str = Field(description="Ready (RoutingPolicy) or Current (FeatureBudget).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason, e.g. Rendered, Invalid, LedgerUnreachable.")
    message: str = Field(default="", description="What happened, for humans.")
    last_transition_time: str = Field(description="RFC 3339 time the status last changed.")
    observed_generation: int | None = Field(
        default=None, description="Generation the condition was computed from."
    )


class RoutingPolicyStatus(Spec):
    """What the operator made of a RoutingPolicy."""

    conditions: list[Condition] = Field(
        default_factory=list, description="Ready: rendered into the ConfigMap, or why not."
    )
    observed_generation: int | None = Field(default=None, description="Generation last handled.")
    config_map: str | None = Field(
        default=None, description="ConfigMap holding the sidecar config."
    )
    config_hash: str | None = Field(default=None, description="Hash of the rendered config.")
    routes: int | None = Field(default=None, description="Number of routes in force.")
    unmetered_pods: int | None = Field(
        default=None,
        ge=0,
        description="Pods that ask for this policy's sidecar (switchboard.dev/inject) but run "
        "without it, e.g. created while the webhook was unavailable: their traffic is not metered.",
    )


class ModelSpend(Spec):
    """Spend of a budget's feature on one team/provider/model in the current period."""

    team: str = Field(description="Team the spend is attributed to.")
    provider: str = Field(description="Provider that served the requests.")
    model: str = Field(description="Model that served the requests.")
    spent_usd: str = Field(alias="spentUSD", description="Exact decimal USD.")
    requests: int = Field(ge=0, description="Requests priced.")
    input_tokens: int = Field(default=0, ge=0, description="Input tokens billed.")
    output_tokens: int = Field(default=0, ge=0, description="Output tokens billed.")


def _json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: the CRD's status schema says `type: number`."""
    return int(value) if value == value.to_integral_value() else float(value)


Delivery = Literal["Pending", "Sent", "Failed", "Off"]


class AlertSent(Spec):
    """A threshold alert of a period: recorded before it is delivered, so never sent twice.

    Each channel is Pending until delivered (Sent), Off when not configured, and the webhook is
    Failed once it gave up after `attempts` tries.
    """

    period_start: str = Field(description="Start of the period it was sent in (RFC 3339).")
    percent: Annotated[
        Decimal, PlainSerializer(_json_number, return_type=int | float, when_used="json")
    ] = Field(description="The threshold's percent.")
    action: ThresholdAction = Field(description="The threshold's action.")
    at: str = Field(description="When the threshold was found reached (RFC 3339).")
    event: Delivery = Field(default="Sent", description="The Kubernetes Event: Pending, Sent, Off.")
    webhook: Delivery = Field(
        default="Off", description="The webhook POST: Pending, Sent, Failed or Off."
    )
    attempts: int = Field(default=0, ge=0, description="Webhook deliveries tried.")
    message: str | None = Field(default=None, description="Why the last webhook delivery failed.")


class FeatureBudgetStatus(Spec):
    """A budget's spend in its current period, from the ledger."""

    conditions: list[Condition] = Field(
        default_factory=list, description="Current: the ledger was read, or why not."
    )
    observed_generation: int | None = Field(default=None, description="Generation last handled.")
    period_start: str | None = Field(default=None, description="Start of the current period.")
    period_end: str | None = Field(default=None, description="End of the current period.")
    spent_usd: str | None = Field(
        default=None, alias="spentUSD", description="Exact decimal USD spent in the period."
    )
    remaining_usd: str | None = Field(
        default=None, alias="remainingUSD", description="limitUSD minus spent, never below 0."
    )
    percent_used: float | None = Field(default=None, description="spent / limit, in percent.")
    state: Literal["Ok", "Warning", "Downgraded", "Blocked"] | None = Field(
        default=None, description="Ok, Warning (an alert fired), Downgraded or Blocked."
    )
    by_model: list[ModelSpend] = Field(
        default_factory=list, description="Spend per team, provider and model."
    )
    alerts_sent: list[AlertSent] = Field(
        default_factory=list, description="Threshold alerts sent, so none is sent twice."
    )
    last_updated: str | None = Field(default=None, description="When the ledger was last read.")


class RoutingPolicy(BaseModel):
    """The RoutingPolicy resource as applied with kubectl."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: Literal["switchboard.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["RoutingPolicy"]
    metadata: ObjectMeta
    spec: RoutingPolicySpec
    status: RoutingPolicyStatus | None = None


class FeatureBudget(BaseModel):
    """The FeatureBudget resource as applied with kubectl."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_version: Literal["switchboard.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["FeatureBudget"]
    metadata: ObjectMeta
    spec: FeatureBudgetSpec
    status: FeatureBudgetStatus | None = None
