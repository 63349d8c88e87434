"""Pure: who a request is for (feature, team) and the facts routes match on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.api import names
from switchboard.api.v1alpha1 import Attribution
from switchboard.routing.match import RequestFacts

TRAFFIC_CLASSES = frozenset({"realtime", "batch", "critical"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Attribution of the pod this sidecar serves (annotations via env, or flags)."""

    namespace: str
    feature: str | None
    team: str | None


def request_facts(
    headers: Mapping[str, str],
    requested_model: str,
    identity: Identity,
    attribution: Attribution,
    prompt_tokens: int,
    max_output_tokens: int,
) -> RequestFacts:
    """The facts of one request; headers name feature and team only where the policy allows."""
    feature, team = identity.feature, identity.team
    if attribution.allow_header_override:
        feature = headers.get(names.HEADER_FEATURE) or feature
        team = headers.get(names.HEADER_TEAM) or team
    traffic_class = headers.get(names.HEADER_CLASS)
    return RequestFacts(
        feature=feature or attribution.default_feature,
        team=team,
        task=headers.get(names.HEADER_TASK) or None,
        requested_model=requested_model,
        traffic_class=traffic_class.lower() if traffic_class else None,
        region=(headers.get(names.HEADER_REGION) or "").lower() or None,
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_output_tokens,
    )
