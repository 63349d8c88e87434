"""Pure: every name other parts rely on — API group, annotations, headers, env vars.

Defined once here so that the sidecar, the operator, the chart and the tests agree.
"""

from __future__ import annotations

import re

GROUP = "switchboard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND_ROUTING_POLICY = "RoutingPolicy"
KIND_FEATURE_BUDGET = "FeatureBudget"
KIND_SIDECAR_CONFIG = "SidecarConfig"
PLURAL_ROUTING_POLICY = "routingpolicies"
PLURAL_FEATURE_BUDGET = "featurebudgets"

# What the operator renders a RoutingPolicy into; the sidecar reads the key as `--config`.
CONFIG_MAP_PREFIX = "switchboard-"
CONFIG_MAP_KEY = "config.yaml"
LABEL_POLICY = f"{GROUP}/policy"
ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"

# Pod annotations (see DESIGN.md, "Pod injection").
ANNOTATION_INJECT = f"{GROUP}/inject"
ANNOTATION_POLICY = f"{GROUP}/policy"
ANNOTATION_FEATURE = f"{GROUP}/feature"
ANNOTATION_TEAM = f"{GROUP}/team"

# Request headers the application may send.
HEADER_FEATURE = "X-Switchboard-Feature"
HEADER_TEAM = "X-Switchboard-Team"
HEADER_TASK = "X-Switchboard-Task"
HEADER_CLASS = "X-Switchboard-Class"
HEADER_REGION = "X-Switchboard-Region"

# Response headers the sidecar always sets.
RESPONSE_PROVIDER = "x-switchboard-provider"
RESPONSE_MODEL = "x-switchboard-model"
RESPONSE_ROUTE = "x-switchboard-route"
RESPONSE_COST = "x-switchboard-cost-usd"
RESPONSE_CACHE = "x-switchboard-cache"
RESPONSE_OVERHEAD = "x-switchboard-overhead-ms"
RESPONSE_BUDGET = "x-switchboard-budget"
RESPONSE_ATTEMPTS = "x-switchboard-attempts"

# Environment of the sidecar process.
ENV_FEATURE = "SWITCHBOARD_FEATURE"
ENV_TEAM = "SWITCHBOARD_TEAM"
ENV_NAMESPACE = "SWITCHBOARD_NAMESPACE"
ENV_OUTBOX = "SWITCHBOARD_OUTBOX"
DEFAULT_PORT = 4000

# Sidecar injection (operator/switchboard/operator/podpatch.py, webhook.py).
SIDECAR_CONTAINER = "switchboard"
"""The injected container's name; a pod with a container of this name is already injected."""
WEBHOOK_INJECT_ID = "inject"
WEBHOOK_INJECT_PATH = f"/{WEBHOOK_INJECT_ID}"
"""URL path of the mutating webhook: a MutatingWebhookConfiguration's clientConfig points here."""
WEBHOOK_NAME = f"{WEBHOOK_INJECT_ID}.{GROUP}"
"""The webhook's name in a MutatingWebhookConfiguration."""
# Set on every application container that does not set them itself: the OpenAI SDKs (and
# most others) read them, so the application talks to the sidecar without a code change.
APP_BASE_URL_ENV = ("OPENAI_BASE_URL", "OPENAI_API_BASE")

_NOT_ENV = re.compile(r"[^A-Z0-9]+")


def provider_key_env(provider: str) -> str:
    """The env var that holds a provider's key when it comes from a `secretKeyRef`.

    The webhook creates it from the Secret; the sidecar reads it.
    `openai-eu` -> `SWITCHBOARD_KEY_OPENAI_EU`.
    """
    return "SWITCHBOARD_KEY_" + _NOT_ENV.sub("_", provider.upper()).strip("_")


def config_map_name(policy: str) -> str:
    """The ConfigMap a RoutingPolicy is rendered into: `default` -> `switchboard-default`."""
    return CONFIG_MAP_PREFIX + policy
