"""Pure: sidecar injection: a Pod, its `InjectionOptions`, the facts of its RoutingPolicy and the
`InjectorSettings` become an RFC 6902 JSON patch (or a reason not to inject).

An injected pod gets:
- the sidecar as a native sidecar: the *first* init container, with `restartPolicy: Always`, so
  it starts before every other container and lives as long as the pod. Its startup probe holds
  the other containers back until it serves; readiness and liveness probes follow. It serves the
  OpenAI API on 127.0.0.1 only (no other pod can spend this pod's keys) and /metrics, /healthz
  and /readyz on every address (the kubelet probes from outside the pod). It runs as non-root on
  a read-only root filesystem, without privilege escalation or capabilities, under the runtime's
  default seccomp profile;
- the policy's ConfigMap (`switchboard-<policy>`) mounted read-only, and an emptyDir for the
  ledger outbox (records kept while Redis is unreachable);
- in the sidecar's env: the namespace (downward API), feature and team from the annotations,
  the outbox path, each provider key the policy takes from a Secret (`secretKeyRef`, under
  `names.provider_key_env(provider)`), and the settings' extra env;
- on every application container (`containers`) that sets neither in `env`:
  `OPENAI_BASE_URL` and `OPENAI_API_BASE` = `http://127.0.0.1:<port>/v1`. A container that
  sets either one keeps its own endpoint (and gets neither). Values that come through `envFrom`
  are not looked at (an `env` entry beats `envFrom`): set your own in `env` to keep it.

Not injected: pods that do not ask (`switchboard.dev/inject` other than "true"), pods that carry
the sidecar already (so the patch is idempotent), and, with a warning (or a refusal when the
failure policy is Fail), pods whose policy is missing or which already use a name or port the
sidecar needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from switchboard.api import names
from switchboard.api.v1alpha1 import ApiKeySource
from switchboard.config.model import InjectorSettings

Body = Mapping[str, Any]
PatchOp = dict[str, Any]
"""One RFC 6902 operation ({"op": "add", "path": ..., "value": ...})."""
Result = Literal["Injected", "NotRequested", "AlreadyInjected", "PolicyMissing", "Conflict"]

CONFIG_VOLUME = "switchboard-config"
OUTBOX_VOLUME = "switchboard-outbox"
OUTBOX_FILE = "outbox.jsonl"
METRICS_PORT_NAME = "sb-metrics"
LOOPBACK = "127.0.0.1"


class InjectionOptions(BaseModel):
    """What a pod asks for, read from its annotations: each field's alias is its annotation."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    inject: bool = Field(default=False, alias=names.ANNOTATION_INJECT)
    policy: str | None = Field(default=None, alias=names.ANNOTATION_POLICY)
    feature: str | None = Field(default=None, alias=names.ANNOTATION_FEATURE)
    team: str | None = Field(default=None, alias=names.ANNOTATION_TEAM)

    @field_validator("inject", mode="before")
    @classmethod
    def _exactly_true(cls, value: object) -> bool:
        """Only "true" opts in, as the webhook's matchConditions say."""
        return value is True or value == "true"

    @field_validator("policy", "feature", "team", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> InjectionOptions:
        return cls.model_validate(dict(annotations or {}))


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A provider key handed to the sidecar as env from a Secret."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """What injection needs from a RoutingPolicy."""

    name: str
    keys: tuple[ProviderKey, ...] = ()

    @property
    def config_map(self) -> str:
        return names.config_map_name(self.name)


@dataclass(frozen=True, slots=True)
class PolicyMissing:
    """The pod's RoutingPolicy could not be found (or read), and why."""

    name: str
    reason: str
    """Completes "RoutingPolicy <name> ...", e.g. "does not exist in namespace shop"."""


@dataclass(frozen=True, slots=True)
class Injection:
    """The webhook's answer for one pod."""

    result: Result
    patch: tuple[PatchOp, ...] = ()
    warnings: tuple[str, ...] = ()
    refuse: bool = False
    """Refuse the pod (failure policy Fail) instead of admitting it without the sidecar."""


def _meta(body: Body) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(pod: Body) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _list(holder: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = holder.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def options_of(pod: Body) -> InjectionOptions:
    return InjectionOptions.from_annotations(_meta(pod).get("annotations"))


def policy_name(options: InjectionOptions, settings: InjectorSettings) -> str:
    """The RoutingPolicy a pod uses: its annotation, else the settings' default."""
    return options.policy or settings.default_policy


def find_policy(policies: Iterable[Body], name: str) -> Body | None:
    """The policy of that name among a namespace's policies."""
    return next((p for p in policies if _meta(p).get("name") == name), None)


def policy_info(policy: Body) -> PolicyInfo:
    """The policy's name and the Secrets its providers' keys come from (in provider order)."""
    spec = policy.get("spec")
    providers = _list(spec, "providers") if isinstance(spec, Mapping) else []
    keys: dict[str, ProviderKey] = {}
    for provider in providers:
        try:
            source = ApiKeySource.model_validate(provider.get("apiKey"))
        except ValidationError:  # no key, or an invalid one: the policy's status says so
            continue
        ref = source.secret_key_ref
        if ref is not None:
            env = source.env_var(str(provider.get("name", "")))
            keys.setdefault(env, ProviderKey(env, ref.name, ref.key))
    return PolicyInfo(str(_meta(policy).get("name", "")), tuple(keys.values()))


def containers_of(pod: Body) -> list[Mapping[str, Any]]:
    """Every container of the pod: init containers, then application containers."""
    spec = _spec(pod)
    return [*_list(spec, "initContainers"), *_list(spec, "containers")]


def has_sidecar(pod: Body) -> bool:
    return any(c.get("name") == names.SIDECAR_CONTAINER for c in containers_of(pod))


def base_url(settings: InjectorSettings) -> str:
    """What the application's OPENAI_BASE_URL becomes."""
    return f"http://{LOOPBACK}:{settings.port}/v1"


def _env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _sidecar_env(
    options: InjectionOptions, policy: PolicyInfo, settings: InjectorSettings
) -> list[dict[str, Any]]:
    namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    env: list[dict[str, Any]] = [{"name": names.ENV_NAMESPACE, "valueFrom": namespace}]
    if options.feature:
        env.append(_env_value(names.ENV_FEATURE, options.feature))
    if options.team:
        env.append(_env_value(names.ENV_TEAM, options.team))
    env.append(_env_value(names.ENV_OUTBOX, f"{settings.outbox_dir}/{OUTBOX_FILE}"))
    env += [
        {"name": k.env, "valueFrom": {"secretKeyRef": {"name": k.secret, "key": k.key}}}
        for k in policy.keys
    ]
    ours = {e["name"] for e in env}
    env += [_env_value(n, v) for n, v in sorted(settings.env.items()) if n not in ours]
    return env


def _probe(path: str, settings: InjectorSettings, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": settings.metrics_port},
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": failures,
    }


def _resources(settings: InjectorSettings) -> dict[str, Any]:
    out = settings.resources.model_dump(mode="json", exclude_none=True)
    return {part: values for part, values in out.items() if values}


def sidecar_container(
    options: InjectionOptions, policy: PolicyInfo, settings: InjectorSettings
) -> dict[str, Any]:
    """The sidecar as a native sidecar (an init container that restarts: `Always`)."""
    return {
        "name": names.SIDECAR_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "restartPolicy": "Always",
        "command": list(settings.command),
        "args": [
            "sidecar",
            "--config",
            f"{settings.config_dir}/{names.CONFIG_MAP_KEY}",
            "--host",
            LOOPBACK,
            "--port",
            str(settings.port),
            "--metrics-port",
            str(settings.metrics_port),
        ],
        "env": _sidecar_env(options, policy, settings),
        "ports": [
            {"name": METRICS_PORT_NAME, "containerPort": settings.metrics_port, "protocol": "TCP"}
        ],
        "startupProbe": _probe("/readyz", settings, period=1, failures=120),
        "readinessProbe": _probe("/readyz", settings, period=5, failures=3),
        "livenessProbe": _probe("/healthz", settings, period=10, failures=3),
        "resources": _resources(settings),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": settings.config_dir, "readOnly": True},
            {"name": OUTBOX_VOLUME, "mountPath": settings.outbox_dir},
        ],
    }


def volumes(policy: PolicyInfo, settings: InjectorSettings) -> list[dict[str, Any]]:
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": policy.config_map}},
        {"name": OUTBOX_VOLUME, "emptyDir": {"sizeLimit": settings.outbox_size_limit}},
    ]


def _add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def _append(holder: Mapping[str, Any], key: str, path: str, items: Sequence[Any]) -> list[PatchOp]:
    """Ops adding `items` at the end of `holder[key]` (the list is created when absent)."""
    if not items:
        return []
    if not isinstance(holder.get(key), list):
        return [_add(f"{path}/{key}", list(items))]
    return [_add(f"{path}/{key}/-", item) for item in items]


def _app_env(container: Mapping[str, Any], settings: InjectorSettings) -> list[dict[str, Any]]:
    """The base URL variables, unless the container sets one itself: then it chose its endpoint,
    and pointing the other one at the sidecar would leave it with two."""
    own = {e.get("name") for e in _list(container, "env")}
    if own.intersection(names.APP_BASE_URL_ENV):
        return []
    return [_env_value(n, base_url(settings)) for n in names.APP_BASE_URL_ENV]


def pod_patch(
    pod: Body, options: InjectionOptions, policy: PolicyInfo, settings: InjectorSettings
) -> list[PatchOp]:
    """The JSON patch that injects the sidecar into `pod` (see the module docstring)."""
    spec = _spec(pod)
    sidecar = sidecar_container(options, policy, settings)
    ops = (
        [_add("/spec/initContainers/0", sidecar)]
        if isinstance(spec.get("initContainers"), list)
        else [_add("/spec/initContainers", [sidecar])]
    )
    ops += _append(spec, "volumes", "/spec", volumes(policy, settings))
    for i, container in enumerate(_list(spec, "containers")):
        ops += _append(container, "env", f"/spec/containers/{i}", _app_env(container, settings))
    return ops


def conflicts(pod: Body, settings: InjectorSettings) -> list[str]:
    """What in the pod stops the sidecar from fitting in."""
    spec = _spec(pod)
    found = [
        f"the pod already has a volume named {v['name']}"
        for v in _list(spec, "volumes")
        if v.get("name") in (CONFIG_VOLUME, OUTBOX_VOLUME)
    ]
    ours = {settings.port, settings.metrics_port}
    found += [
        f"container {c.get('name')} uses port {p.get('containerPort')}, which the sidecar needs"
        for c in containers_of(pod)
        for p in _list(c, "ports")
        if p.get("containerPort") in ours
    ]
    if spec.get("hostNetwork") is True:
        found.append("the pod uses the node's network (hostNetwork), where the ports are shared")
    return found


def _not_injected(result: Result, why: str, settings: InjectorSettings) -> Injection:
    refuse = settings.failure_policy == "Fail"
    effect = (
        "the pod is refused (failure policy Fail)"
        if refuse
        else "the pod is admitted without it, so its LLM traffic is neither routed nor metered"
    )
    return Injection(
        result, warnings=(f"switchboard: sidecar not injected: {why}; {effect}",), refuse=refuse
    )


def injection(
    pod: Body,
    options: InjectionOptions,
    policy: PolicyInfo | PolicyMissing,
    settings: InjectorSettings,
) -> Injection:
    """Whether and how to inject the sidecar into `pod` as it is created."""
    if not options.inject:
        return Injection("NotRequested")
    if has_sidecar(pod):
        return Injection("AlreadyInjected")
    if isinstance(policy, PolicyMissing):
        why = f"RoutingPolicy {policy.name} {policy.reason}"
        return _not_injected("PolicyMissing", why, settings)
    found = conflicts(pod, settings)
    if found:
        return _not_injected("Conflict", "; ".join(found), settings)
    return Injection("Injected", tuple(pod_patch(pod, options, policy, settings)))
