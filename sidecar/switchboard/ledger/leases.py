"""Edge: budget leases in Redis — the cluster-wide guard that keeps spend under a block limit.

Before a paid attempt, a sidecar needs the attempt's maximum cost covered by budget it holds
on lease. It leases in chunks from one counter per (namespace, feature, window) in Redis; one
Lua script grants at most what is left below the block limit, atomically. The sum of all
grants never reaches the limit, so neither can the spend of attempts that were covered: past a
block threshold a period grows only by what attempts in flight cost beyond their reserved
maximum. Amounts are whole micro-dollars, rounded against the caller (grants down, asks up).

    <prefix>:lease:{<namespace>}:<feature>:<window label>   micro-dollars granted so far
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import redis.asyncio as aioredis

from switchboard.budget.periods import Window

MICRO = Decimal("0.000001")
TAKE_SCRIPT = """
local granted = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[2]) - granted
if room <= 0 then return 0 end
local give = math.min(tonumber(ARGV[1]), room)
redis.call('INCRBY', KEYS[1], give)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return give
"""


def _micros(amount: Decimal, rounding: str) -> int:
    return int((amount / MICRO).quantize(Decimal(1), rounding=rounding))


class RedisLeases:
    def __init__(self, url: str, *, key_prefix: str = "switchboard") -> None:
        self._redis = aioredis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        self._take = self._redis.register_script(TAKE_SCRIPT)
        self._prefix = key_prefix

    def _key(self, namespace: str, feature: str, window: Window) -> str:
        return f"{self._prefix}:lease:{{{namespace}}}:{feature}:{window.label}"

    async def take(
        self, namespace: str, feature: str, window: Window, want: Decimal, limit: Decimal
    ) -> Decimal:
        """Up to `want` more on lease, keeping every grant of the window below `limit`."""
        below = _micros(limit, ROUND_CEILING) - 1
        expire_ms = int((window.end + timedelta(days=1)).timestamp() * 1000)
        given = await self._take(
            keys=[self._key(namespace, feature, window)],
            args=[_micros(want, ROUND_CEILING), below, expire_ms],
        )
        return Decimal(int(given)) * MICRO

    async def give_back(
        self, namespace: str, feature: str, window: Window, amount: Decimal
    ) -> None:
        """Return unused lease (on shutdown), so other sidecars may spend it."""
        micros = _micros(amount, ROUND_FLOOR)
        if micros > 0:
            await self._redis.decrby(self._key(namespace, feature, window), micros)

    async def close(self) -> None:
        await self._redis.aclose()
