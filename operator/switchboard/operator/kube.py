"""Edge: the calls the operator makes to the Kubernetes API itself (kopf makes the rest).

ConfigMaps are written with server-side apply (one idempotent call: the API server compares and
writes only a change), Events are created under a given name (a second create of the same alert
is refused, so a retry cannot double it), Secrets are read for webhook URLs, and statuses are
merge-patched where kopf's own `patch` cannot be used (another object's status, or a write that
must land before the handler goes on).

Failures come out as kopf errors: conflicts, throttling, server errors and an unreachable API
server are `kopf.TemporaryError` (kopf retries with a delay); a request the API server refuses
as malformed is `kopf.PermanentError`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from switchboard.api import names

FIELD_MANAGER = "switchboard-operator"
RETRY_SECONDS = 5.0
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
_PERMANENT = {400, 422}


class PeeringMissing(RuntimeError):
    """The kopf peering CRD is not installed."""


def _retry_after(exc: ApiException) -> float:
    headers: Mapping[str, str] = exc.headers or {}
    try:
        return max(1.0, float(headers.get("Retry-After", RETRY_SECONDS)))
    except ValueError:
        return RETRY_SECONDS


@contextlib.asynccontextmanager
async def _api(what: str) -> AsyncIterator[None]:
    """Turn API failures of `what` into kopf's temporary or permanent errors."""
    try:
        yield
    except ApiException as exc:
        detail = f"{what}: the API server answered {exc.status} {exc.reason}"
        if exc.status in _PERMANENT:
            raise kopf.PermanentError(detail) from exc
        raise kopf.TemporaryError(detail, delay=_retry_after(exc)) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise kopf.TemporaryError(
            f"{what}: the API server is unreachable ({type(exc).__name__})", delay=RETRY_SECONDS
        ) from exc


class Kube:
    """The API calls the operator makes itself; `close()` when done."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self._core: Any = client.CoreV1Api(api)
        self._custom: Any = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls) -> Kube:
        """The in-cluster service account, else $KUBECONFIG or ~/.kube/config (as kopf logs in)."""
        configuration = client.Configuration()
        load_incluster: Any = config.load_incluster_config
        try:
            load_incluster(client_configuration=configuration)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()

    async def apply_config_map(self, body: Mapping[str, Any]) -> None:
        """Make the ConfigMap `body` describes exist as described (server-side apply)."""
        meta = body["metadata"]
        async with _api(f"apply ConfigMap {meta['namespace']}/{meta['name']}"):
            await self._core.patch_namespaced_config_map(
                meta["name"],
                meta["namespace"],
                dict(body),
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The text under `key` of a Secret; None when the Secret or the key is missing."""
        async with _api(f"read Secret {namespace}/{name}"):
            try:
                secret = await self._core.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        encoded = (secret.data or {}).get(key)
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            return None

    async def create_event(self, body: Mapping[str, Any]) -> bool:
        """Create the Event; False when one of that name exists already (so it was sent)."""
        meta = body["metadata"]
        async with _api(f"create Event {meta['namespace']}/{meta['name']}"):
            try:
                await self._core.create_namespaced_event(meta["namespace"], dict(body))
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    async def custom_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A switchboard.dev object as stored now (not as last watched); None: it does not exist."""
        async with _api(f"read {plural} {namespace}/{name}"):
            try:
                found = await self._custom.get_namespaced_custom_object(
                    names.GROUP, names.VERSION, namespace, plural, name
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return found if isinstance(found, dict) else None

    async def status_of(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A switchboard.dev object's status as stored now (not as last watched); None: gone."""
        found = await self.custom_object(plural, namespace, name)
        if found is None:
            return None
        status = found.get("status")
        return status if isinstance(status, dict) else {}

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge `status` into a switchboard.dev object's status; nothing if it is gone."""
        async with _api(f"patch the status of {plural} {namespace}/{name}"):
            try:
                await self._custom.patch_namespaced_custom_object_status(
                    names.GROUP,
                    names.VERSION,
                    namespace,
                    plural,
                    name,
                    {"status": dict(status)},
                    _content_type="application/merge-patch+json",
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    async def ensure_peering(self, name: str, namespace: str | None) -> None:
        """Create the kopf peering object (namespaced, or cluster-wide when no namespace).

        `PeeringMissing` when its CRD is not installed (crds/kopf-peering.yaml).
        """
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        body = {
            "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
            "kind": kind,
            "metadata": {"name": name},
        }
        async with _api(f"create {kind} {name}"):
            try:
                if namespace:
                    await self._custom.create_namespaced_custom_object(
                        PEERING_GROUP, PEERING_VERSION, namespace, "kopfpeerings", body
                    )
                else:
                    await self._custom.create_cluster_custom_object(
                        PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", body
                    )
            except ApiException as exc:
                if exc.status == 404:
                    raise PeeringMissing(
                        f"the {kind} CRD is not installed: apply crds/kopf-peering.yaml, "
                        "or run the operator with --standalone"
                    ) from exc
                if exc.status != 409:
                    raise
