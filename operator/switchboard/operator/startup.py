"""Edge: the one `@kopf.on.startup` handler, which makes every kopf setting.

- Persistence under `switchboard.dev`: handler progress and the last handled spec go in
  annotations (`switchboard.dev/...`), never in `status`, whose schema the CRDs own.
- Posting: only warnings and errors become Kubernetes Events on the objects.
- Watching: bounded watch requests, so a restarted API server is noticed within a minute.
- Admission: with `--webhook-port`, an HTTPS server for the mutating webhook (`webhook.py`), with
  the given certificate and key (re-read when the files change, as cert-manager renews them).
  kopf does not manage the MutatingWebhookConfiguration: the Helm chart does. Every replica
  serves the webhook, the standby ones too (peering pauses watching, not admission).
- Peering: replicas share a KopfPeering (or ClusterKopfPeering, when serving every namespace;
  `main.py` creates it before kopf starts); the live replica with the highest priority acts
  and the others pause. kopf pauses *every* replica when two share a priority, so the default
  priority is minus the start time in microseconds: the oldest replica acts, and a new one
  waits its turn. A replica that died without a word (SIGKILL) still counts as live for
  `--peering-lifetime` seconds, so failover after a crash takes that long; after SIGTERM a
  replica removes itself and the next one takes over at once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from switchboard.api import names
from switchboard.operator.memo import Memo

WATCH_SERVER_TIMEOUT = 60
WATCH_CLIENT_TIMEOUT = 90
CONNECT_TIMEOUT = 10


def default_priority() -> int:
    """The oldest replica has the highest priority (see the module docstring)."""
    return -(time.time_ns() // 1000)


async def configure(settings: kopf.OperatorSettings, memo: Memo, **_: Any) -> None:
    ours = memo.settings
    settings.persistence.finalizer = f"{names.GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = CONNECT_TIMEOUT
    if ours.webhook_port is not None:  # the chart owns the MutatingWebhookConfiguration
        settings.admission.server = kopf.WebhookServer(
            addr=ours.webhook_host,
            port=ours.webhook_port,
            certfile=ours.webhook_cert,
            pkeyfile=ours.webhook_key,
        )
    if ours.peering is None:
        settings.peering.standalone = True
        return
    settings.peering.name = ours.peering
    settings.peering.mandatory = True
    settings.peering.priority = memo.priority
    settings.peering.lifetime = ours.peering_lifetime_seconds
