"""Pure: a `SidecarConfig` compiled once into what the hot path reads (`RuntimeConfig`).

Globs are compiled, prices resolved, models and routes indexed, keys read from the given env.
Nothing on the request path re-derives any of it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from switchboard.api.problems import Problem
from switchboard.api.v1alpha1 import FeatureBudgetSpec, Route, RouteMatch
from switchboard.config.load import ConfigError
from switchboard.config.model import BudgetConfig, SidecarConfig
from switchboard.config.render import config_hash, config_text
from switchboard.pricing.catalog import override_price
from switchboard.pricing.cost import UnitPrice

PriceLookup = Callable[[str, "str | None"], "UnitPrice | None"]


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A credential; its repr never shows it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "SecretValue(***)"


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    name: str
    base_url: str
    api: str
    region: str | None
    key_env: str | None
    api_key: SecretValue | None
    timeout: float
    connect_timeout: float
    first_byte_timeout: float


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    name: str
    provider: ProviderRuntime
    upstream_model: str
    type: str
    price: UnitPrice
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TargetRuntime:
    model: ModelRuntime
    weight: int


@dataclass(frozen=True, slots=True)
class RouteRuntime:
    spec: Route
    name: str
    kind: str
    match: RouteMatch | None
    requested_model_pattern: re.Pattern[str] | None
    targets: tuple[TargetRuntime, ...]
    fallback: tuple[TargetRuntime, ...]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    config: SidecarConfig
    hash: str
    providers: Mapping[str, ProviderRuntime]
    models: Mapping[str, ModelRuntime]
    routes: tuple[RouteRuntime, ...]
    chat_routes: tuple[RouteRuntime, ...]
    embedding_routes: tuple[RouteRuntime, ...]
    routes_by_name: Mapping[str, RouteRuntime]
    residency: Mapping[str, frozenset[str]]
    budgets: Mapping[str, FeatureBudgetSpec]
    feature_budgets: Mapping[str, tuple[BudgetConfig, ...]]

    def allowed_regions(self, user_region: str | None) -> frozenset[str] | None:
        """Provider regions a request from `user_region` may reach; None means unrestricted."""
        if user_region is None:
            return None
        return self.residency.get(user_region)


def _glob_pattern(globs: list[str] | None) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def compile_runtime(
    config: SidecarConfig, *, env: Mapping[str, str], price_lookup: PriceLookup
) -> RuntimeConfig:
    """Compile `config`; ConfigError when a model has no price anywhere."""
    spec = config.spec
    providers: dict[str, ProviderRuntime] = {}
    for p in spec.providers:
        key_env = p.api_key.env_var(p.name) if p.api_key else None
        key = env.get(key_env) if key_env else None
        providers[p.name] = ProviderRuntime(
            name=p.name,
            base_url=p.base_url.rstrip("/"),
            api=p.api,
            region=p.region,
            key_env=key_env,
            api_key=SecretValue(key) if key else None,
            timeout=p.timeout_seconds,
            connect_timeout=p.connect_timeout_seconds,
            first_byte_timeout=p.first_byte_timeout_seconds or p.timeout_seconds,
        )
    problems: list[Problem] = []
    models: dict[str, ModelRuntime] = {}
    for i, m in enumerate(spec.models):
        provider = providers[m.provider]
        upstream = m.upstream_model or m.name
        catalog_id = next(p.price_catalog_id for p in spec.providers if p.name == m.provider)
        price = (
            override_price(m.price)
            if m.price is not None
            else price_lookup(upstream, catalog_id or provider.name)
        )
        if price is None:
            problems.append(
                Problem(
                    f"spec.models[{i}].price",
                    f"{m.name!r} is not in the genai-prices catalog; set price",
                )
            )
            continue
        models[m.name] = ModelRuntime(
            name=m.name,
            provider=provider,
            upstream_model=upstream,
            type=m.type,
            price=price,
            labels=dict(m.labels),
        )
    if problems:
        raise ConfigError(problems)
    routes = tuple(
        RouteRuntime(
            spec=r,
            name=r.name,
            kind=models[r.targets[0].model].type,
            match=r.match,
            requested_model_pattern=_glob_pattern(r.match.requested_models if r.match else None),
            targets=tuple(TargetRuntime(models[t.model], t.weight) for t in r.targets),
            fallback=tuple(TargetRuntime(models[t.model], t.weight) for t in r.fallback),
        )
        for r in spec.routes
    )
    return RuntimeConfig(
        config=config,
        hash=config_hash(config_text(config)),
        providers=providers,
        models=models,
        routes=routes,
        chat_routes=tuple(r for r in routes if r.kind == "chat"),
        embedding_routes=tuple(r for r in routes if r.kind == "embedding"),
        routes_by_name={r.name: r for r in routes},
        residency={k: frozenset(v) for k, v in spec.data_residency.items()},
        budgets={b.name: b.spec for b in config.budgets},
        feature_budgets={
            feature: tuple(b for b in config.budgets if b.spec.feature == feature)
            for feature in {b.spec.feature for b in config.budgets}
        },
    )
