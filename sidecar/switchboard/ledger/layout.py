"""Pure: how the Redis ledger lays spend out in keys and hash fields, and reads it back.

Keys (`<prefix>` defaults to `switchboard`):

    <prefix>:rec:{<namespace>}:<record id>
        "1", created once (SET NX) with a 35-day expiry: the record was applied, so a second
        delivery of it (an outbox replay) is a no-op.
    <prefix>:spend:{<namespace>}:<feature>:<window label>
        one hash per window of the record's time: `daily:2026-11-23`, `weekly:2026-11-23`
        (the Monday), `monthly:2026-11-01`; it expires 90 days after the window ends.

The braces are a Redis Cluster hash tag: all keys one record touches share a slot, so the apply
script is legal on a cluster. A feature name may hold any character: the key ends with the
window label, which has exactly one colon, so it is never ambiguous.

Hash fields are `model:<team>/<provider>/<model>:<counter>` (a model id may hold colons, so a
field is split at its last colon). A window's total is the sum of its model slices, added up
when it is read: each record then costs the script half the HINCRBYs (Redis is single-threaded
and every priced call of the cluster goes through it), and reads, which the budget refresh makes
in the background, fetch the whole hash anyway. Fields of any other slice (a `total:` slice
that early versions wrote as well) are ignored. The counters are:

    usd, pico_usd   the cost: whole dollars, plus the rest in pico-dollars (10^-12 USD), which
                    the script keeps in [0, 10^12) by carrying into `usd`
    input_tokens, output_tokens, cached_input_tokens, requests

Exactness: a cost is stored as round-half-even(cost x 10^12) pico-dollars, which is exact for
every cost with at most 12 decimals, so for every price with at most 6 decimals per million
tokens times a whole number of tokens. A finer cost is rounded to the nearest pico-dollar (ties
to even): at most 5 x 10^-13 USD per record. Sums are integer additions in Redis, so totals read
back as `Decimal` equal the sum of the rounded costs exactly. Cost is split in two counters
because HINCRBY is 64-bit: one pico-dollar counter would overflow at about $9.2M per window;
whole dollars cannot, and the pico part stays far below 2^53, where Lua's numbers are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from switchboard.budget.periods import PERIODS, Window, window_of
from switchboard.ledger.base import SpendRecord, Totals, WindowTotals, breakdown_key
from switchboard.pricing.cost import Usage

PICO_PER_USD = 10**12
RECORD_TTL_SECONDS = 35 * 24 * 3600
"""How long a record id is remembered: longer than the longest window (31 days)."""
WINDOW_RETENTION = timedelta(days=90)
"""How long a window's totals are kept after the window ends."""

MODEL_SLICE_PREFIX = "model:"
COUNTERS = ("usd", "pico_usd", "input_tokens", "output_tokens", "cached_input_tokens", "requests")

# Exact arithmetic for conversions: enough digits for any cost a ledger will see, and rounding
# happens only in quantize(), where it is intended.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[])


def picodollars(cost: Decimal) -> int:
    """`cost` (USD) in whole pico-dollars, rounded half to even below 10^-12 USD."""
    if not cost.is_finite():
        raise ValueError(f"cost must be a finite amount, got {cost}")
    scaled = cost.scaleb(12, _EXACT)
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_EXACT))


def dollars(usd: int, pico: int) -> Decimal:
    """The exact amount `usd` whole dollars plus `pico` pico-dollars, in USD."""
    return _EXACT.add(Decimal(usd), Decimal(pico).scaleb(-12, _EXACT))


def split_picodollars(pico: int) -> tuple[int, int]:
    """(whole dollars, rest in pico-dollars) with the rest in [0, 10^12), also for negatives."""
    return divmod(pico, PICO_PER_USD)


def record_key(prefix: str, namespace: str, record_id: str) -> str:
    return f"{prefix}:rec:{{{namespace}}}:{record_id}"


def window_key(prefix: str, namespace: str, feature: str, window: Window) -> str:
    return f"{prefix}:spend:{{{namespace}}}:{feature}:{window.label}"


APPLY_SCRIPT = """
-- KEYS[1]: the record key; KEYS[2..4]: the daily, weekly and monthly window hashes.
-- ARGV[1]: record TTL (s); ARGV[2..4]: EXPIREAT of each window hash; ARGV[5]: model slice;
-- ARGV[6]: whole dollars; ARGV[7]: pico-dollars in [0, 10^12); ARGV[8..11]: input, output,
-- cached input tokens, requests. Returns 1 when applied, 0 when the record was already seen.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local counters = {'input_tokens', 'output_tokens', 'cached_input_tokens', 'requests'}
local slice = ARGV[5]
for w = 2, 4 do
  local key = KEYS[w]
  redis.call('HINCRBY', key, slice .. ':usd', ARGV[6])
  local pico = redis.call('HINCRBY', key, slice .. ':pico_usd', ARGV[7])
  if pico >= 1000000000000 then
    redis.call('HINCRBY', key, slice .. ':pico_usd', '-1000000000000')
    redis.call('HINCRBY', key, slice .. ':usd', '1')
  end
  for i, counter in ipairs(counters) do
    redis.call('HINCRBY', key, slice .. ':' .. counter, ARGV[7 + i])
  end
  redis.call('EXPIREAT', key, ARGV[w])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """The keys and arguments of one APPLY_SCRIPT call."""

    keys: tuple[str, ...]
    args: tuple[str, ...]


def record_windows(at: datetime) -> tuple[Window, ...]:
    """The daily, weekly and monthly windows of `at`, in `PERIODS` order."""
    return tuple(window_of(period, at) for period in PERIODS)


def apply_call(
    prefix: str, record: SpendRecord, windows: Sequence[Window] | None = None
) -> ScriptCall:
    """How APPLY_SCRIPT adds `record` to the daily, weekly and monthly windows of its time.

    `windows`, when given, are `record_windows(record.at)` (a caller may keep them for a day).
    """
    if windows is None:
        windows = record_windows(record.at)
    usd, pico = split_picodollars(picodollars(record.cost))
    usage = record.usage
    keys = (
        record_key(prefix, record.namespace, record.id),
        *(window_key(prefix, record.namespace, record.feature, w) for w in windows),
    )
    args = (
        RECORD_TTL_SECONDS,
        *(int((w.end + WINDOW_RETENTION).timestamp()) for w in windows),
        MODEL_SLICE_PREFIX + breakdown_key(record),
        usd,
        pico,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        1,
    )
    return ScriptCall(keys, tuple(str(a) for a in args))


def _totals(counters: Mapping[str, int]) -> Totals:
    return Totals(
        cost=dollars(counters.get("usd", 0), counters.get("pico_usd", 0)),
        requests=counters.get("requests", 0),
        usage=Usage(
            counters.get("input_tokens", 0),
            counters.get("output_tokens", 0),
            counters.get("cached_input_tokens", 0),
        ),
    )


def window_totals(fields: Mapping[str, str]) -> WindowTotals:
    """A window hash (HGETALL) read back: its model slices, and their sum as the total.
    Fields this version does not know are ignored."""
    slices: dict[str, dict[str, int]] = {}
    whole: dict[str, int] = {}
    for field_name, value in fields.items():
        slice_name, _, counter = field_name.rpartition(":")
        if counter in COUNTERS and slice_name.startswith(MODEL_SLICE_PREFIX):
            name = slice_name.removeprefix(MODEL_SLICE_PREFIX)
            slices.setdefault(name, {})[counter] = int(value)
            whole[counter] = whole.get(counter, 0) + int(value)
    by_model = {name: _totals(counters) for name, counters in sorted(slices.items())}
    return WindowTotals(_totals(whole), by_model)
