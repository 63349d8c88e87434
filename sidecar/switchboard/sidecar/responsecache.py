"""Edge: the in-memory exact-match response cache (TTL, bounded, least recently used out)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A served answer: the body bytes (or SSE events) and what it cost when it was bought."""

    body: bytes
    usage_event: bytes | None
    provider: str
    model: str
    cost: Decimal
    expires_at: float


class ResponseCache:
    """Entries per route, each route bounded by its own `maxEntries` and TTL."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._routes: dict[str, OrderedDict[str, CachedResponse]] = {}

    def get(self, route: str, key: str) -> CachedResponse | None:
        entries = self._routes.get(route)
        entry = entries.get(key) if entries is not None else None
        if entries is None or entry is None:
            return None
        if entry.expires_at <= self._clock():
            del entries[key]
            return None
        entries.move_to_end(key)
        return entry

    def put(self, route: str, key: str, entry: CachedResponse, max_entries: int) -> None:
        entries = self._routes.setdefault(route, OrderedDict())
        entries[key] = entry
        entries.move_to_end(key)
        while len(entries) > max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return sum(len(e) for e in self._routes.values())
