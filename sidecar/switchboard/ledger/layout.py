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
when it is read: the script then writes half the fields (Redis is single-threaded and every
priced call of the cluster goes through it), and reads, which the budget refresh makes
in the background, fetch the whole hash anyway. Fields of any other slice (a `total:` slice
that early versions wrote as well) are ignored. The counters are:

    usd, pico_usd   the cost: whole dollars, plus the rest in pico-dollars (10^-12 USD), which
                    the script keeps in [0, 10^12) by carrying into `usd`
    input_tokens, output_tokens, cached_input_tokens, requests

One script call applies a batch of records: each record counts once, by its key, and the
counters of the records that count are summed per window and slice before they are written, so
a batch of a hundred calls of one model costs Redis a hundred SETs and one write per field
(fields that would only get a zero are not written), not two thousand HINCRBYs.

Exactness: a cost is stored as round-half-even(cost x 10^12) pico-dollars, which is exact for
every cost with at most 12 decimals, so for every price with at most 6 decimals per million
tokens times a whole number of tokens. A finer cost is rounded to the nearest pico-dollar (ties
to even): at most 5 x 10^-13 USD per record. Sums are integer additions in Redis, so totals read
back as `Decimal` equal the sum of the rounded costs exactly (the script's own sums are exact
integers: see APPLY_SCRIPT). Cost is split in two counters because HINCRBY is 64-bit: one
pico-dollar counter would overflow at about $9.2M per window; whole dollars cannot, and the pico
part stays far below 2^53, where Lua's numbers are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import NamedTuple

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
-- Adds a batch of records of one namespace, each exactly once.
-- KEYS[1..3G]: the daily, weekly and monthly window hashes of G groups (the records of one
-- feature and day); KEYS[3G+1..]: one record key per record.
-- ARGV[1]: record TTL (s); ARGV[2]: G; ARGV[3..2+3G]: EXPIREAT of each window hash; then 8
-- per record: its group (1..G), model slice, whole dollars, pico-dollars in [0, 10^12),
-- input, output, cached input tokens, requests.
-- A record counts when its key is new (SET NX). The counters of the records that count are
-- summed per group and slice and written once: values of at most 12 characters sum exactly
-- (below 2^53, where Lua's numbers are exact, for up to 9,000 records); a longer value is
-- added on its own. Returns how many records counted.
local groups = tonumber(ARGV[2])
local fields = {'usd', 'pico_usd', 'input_tokens', 'output_tokens', 'cached_input_tokens',
  'requests'}
local sums, order, touched = {}, {}, {}
local applied, a = 0, 3 + 3 * groups
for r = 3 * groups + 1, #KEYS do
  if redis.call('SET', KEYS[r], '1', 'NX', 'EX', ARGV[1]) then
    applied = applied + 1
    local g, slice = tonumber(ARGV[a]), ARGV[a + 1]
    touched[g] = true
    local by_slice = sums[g]
    if not by_slice then
      by_slice = {}
      sums[g] = by_slice
    end
    local s = by_slice[slice]
    if not s then
      s = {0, 0, 0, 0, 0, 0}
      by_slice[slice] = s
      order[#order + 1] = {g, slice, s}
    end
    for i = 1, 6 do
      local v = ARGV[a + 1 + i]
      if #v > 12 then
        for w = 1, 3 do
          redis.call('HINCRBY', KEYS[3 * (g - 1) + w], slice .. ':' .. fields[i], v)
        end
      else
        s[i] = s[i] + tonumber(v)
      end
    end
  end
  a = a + 8
end
for _, entry in ipairs(order) do
  local g, slice, s = entry[1], entry[2], entry[3]
  for w = 1, 3 do
    local key = KEYS[3 * (g - 1) + w]
    for i = 1, 6 do
      if s[i] ~= 0 then
        local total = redis.call('HINCRBY', key, slice .. ':' .. fields[i],
          string.format('%.0f', s[i]))
        if i == 2 and total >= 1000000000000 then  -- carry whole dollars out of pico_usd
          local carry = math.floor(total / 1000000000000)
          redis.call('HINCRBY', key, slice .. ':pico_usd', string.format('%.0f', -carry * 1e12))
          redis.call('HINCRBY', key, slice .. ':usd', string.format('%.0f', carry))
        end
      end
    end
  end
end
for g = 1, groups do
  if touched[g] then
    for w = 1, 3 do
      redis.call('EXPIREAT', KEYS[3 * (g - 1) + w], ARGV[2 + 3 * (g - 1) + w])
    end
  end
end
return applied
"""
MAX_RECORDS_PER_CALL = 500
"""Records in one APPLY_SCRIPT call: Redis runs a script alone, so a call stays short."""


class PackedRecord(NamedTuple):
    """One record's part of an APPLY_SCRIPT call, already in RESP (`packed_record`): a batch
    then only joins bytes, and the packing can happen when the sidecar has nothing to do."""

    namespace: str
    window_keys: tuple[str, ...]
    """The hashes of its feature's daily, weekly and monthly windows: the records with the
    same ones form a group in a call, which names them once."""
    expiries: tuple[str, ...]
    """When those hashes expire (EXPIREAT, Unix seconds)."""
    key: bytes
    """The record's key, as a RESP bulk string."""
    args: bytes
    """Its arguments after the group number (model slice, the cost's two parts, the three
    token counts, one request), as RESP bulk strings."""


def record_windows(at: datetime) -> tuple[Window, ...]:
    """The daily, weekly and monthly windows of `at`, in `PERIODS` order."""
    return tuple(window_of(period, at) for period in PERIODS)


def packed_record(
    prefix: str,
    record: SpendRecord,
    windows_of: Callable[[datetime], Sequence[Window]] = record_windows,
) -> PackedRecord:
    """`record` ready for `apply_commands`. `windows_of` is `record_windows` (a caller may keep
    its answers for a day). Raises ValueError for a cost that is no amount."""
    usd, pico = split_picodollars(picodollars(record.cost))
    usage = record.usage
    args = (
        MODEL_SLICE_PREFIX + breakdown_key(record),
        str(usd),
        str(pico),
        str(usage.input_tokens),
        str(usage.output_tokens),
        str(usage.cached_input_tokens),
        "1",
    )
    windows = windows_of(record.at)
    return PackedRecord(
        record.namespace,
        tuple(window_key(prefix, record.namespace, record.feature, w) for w in windows),
        tuple(str(int((w.end + WINDOW_RETENTION).timestamp())) for w in windows),
        _bulk(record_key(prefix, record.namespace, record.id)),
        b"".join(map(_bulk, args)),
    )


def apply_commands(sha: str, records: Sequence[PackedRecord]) -> list[bytes]:
    """The EVALSHA commands (RESP) of the APPLY_SCRIPT calls that add `records` to the daily,
    weekly and monthly windows of their time: one per namespace (all keys of a call share its
    hash slot), of at most `MAX_RECORDS_PER_CALL` records."""
    by_namespace: dict[str, list[PackedRecord]] = {}
    for record in records:
        by_namespace.setdefault(record.namespace, []).append(record)
    return [
        _command(sha, batch[start : start + MAX_RECORDS_PER_CALL])
        for batch in by_namespace.values()
        for start in range(0, len(batch), MAX_RECORDS_PER_CALL)
    ]


def _command(sha: str, records: Sequence[PackedRecord]) -> bytes:
    groups: dict[tuple[str, ...], bytes] = {}
    window_keys: list[str] = []
    expiries: list[str] = []
    per_record: list[bytes] = []
    for record in records:
        group = groups.get(record.window_keys)
        if group is None:
            group = groups[record.window_keys] = _bulk(str(len(groups) + 1))
            window_keys += record.window_keys
            expiries += record.expiries
        per_record += (group, record.args)
    keys = len(window_keys) + len(records)
    size = 3 + keys + 2 + len(expiries) + 8 * len(records)
    return b"".join(
        (
            b"*%d\r\n" % size,
            *map(_bulk, ("EVALSHA", sha, str(keys), *window_keys)),
            *(record.key for record in records),
            *map(_bulk, (str(RECORD_TTL_SECONDS), str(len(groups)), *expiries)),
            *per_record,
        )
    )


def _bulk(arg: str) -> bytes:
    data = arg.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


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
