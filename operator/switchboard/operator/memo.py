"""Edge: what every handler shares (kopf's operator `memo`): settings and long-lived clients.

kopf gives each object a shallow copy of this memo, so the clients and the lock table are the
same objects everywhere. Nothing here is a module global.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from switchboard.config.model import OperatorSettings
from switchboard.operator.kube import Kube
from switchboard.operator.ledgers import Ledgers
from switchboard.operator.metrics import OperatorMetrics
from switchboard.operator.slack import Slack


@dataclass
class Memo:
    settings: OperatorSettings
    kube: Kube
    slack: Slack
    ledgers: Ledgers
    metrics: OperatorMetrics
    priority: int
    """The peering priority in force (the settings' or the one derived at start)."""
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)
    """Uids of the unmetered pods this process reported (an Event each), until they go."""

    def namespace_lock(self, namespace: str) -> asyncio.Lock:
        """Serialises the renders of a namespace's policies (their own and their budgets')."""
        return self.locks.setdefault(namespace, asyncio.Lock())
