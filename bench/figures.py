"""Pure: the benchmark's arithmetic — percentiles, open-loop schedule correction, the table.

No clock, socket or process here: `run.py` measures, this module turns samples into figures
and figures into the markdown table (unit-tested in tests/unit/bench/).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Hit:
    """One request of a load run: when it was sent (s since an origin), its sequence number,
    how long it took (s), and whether it succeeded (HTTP 200)."""

    sent: float
    seq: int
    latency: float
    ok: bool


@dataclass(frozen=True, slots=True)
class Paced:
    """An open-loop run judged against its schedule: request i was due at t0 + i / rate."""

    latencies: list[float]
    """Seconds from the scheduled send time to the end of the response (no coordinated
    omission: a late send counts against the server, as a real client would see it)."""
    max_lag: float
    """The latest any request left relative to its schedule (seconds)."""
    p99_lag: float
    achieved_rate: float
    errors: int


def rounds_percentile(rounds: Sequence[Sequence[float]], q: float) -> float:
    """The median over rounds of each round's q-th percentile: one disturbed round (other
    work on the machine) moves the figure less than it would move a pooled percentile."""
    per_round = sorted(percentile(r, q) for r in rounds if r)
    if not per_round:
        return math.nan
    middle = len(per_round) // 2
    if len(per_round) % 2:
        return per_round[middle]
    return (per_round[middle - 1] + per_round[middle]) / 2


def paced(hits: Sequence[Hit], rate: float, warmup: float = 0.0) -> Paced:
    """Latency measured from each request's scheduled send time at a constant `rate`; requests
    scheduled in the first `warmup` seconds (the generator opening its connections) are left
    out of the latencies."""
    if not hits:
        return Paced([], math.nan, math.nan, 0.0, 0)
    # A pacer never sends early, so the schedule starts at the earliest origin any request
    # allows; every lag is then >= 0.
    t0 = min(h.sent - h.seq / rate for h in hits)
    lags = [h.sent - (t0 + h.seq / rate) for h in hits]
    latencies = [
        lag + h.latency
        for lag, h in zip(lags, hits, strict=True)
        if h.ok and h.seq / rate >= warmup
    ]
    span = max(h.sent + h.latency for h in hits) - min(h.sent for h in hits)
    ok = sum(1 for h in hits if h.ok)
    return Paced(
        latencies=latencies,
        max_lag=max(lags),
        p99_lag=percentile(lags, 99),
        achieved_rate=ok / span if span > 0 else 0.0,
        errors=len(hits) - ok,
    )


def gaps(arrivals: Sequence[float]) -> list[float]:
    """Time between consecutive arrivals."""
    return [b - a for a, b in itertools.pairwise(arrivals)]


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """What a figure must be: `value <= limit` (or `>=` when `at_least`)."""

    limit: float
    at_least: bool = False

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.limit if self.at_least else value <= self.limit

    def text(self, unit: str) -> str:
        return f"{'≥' if self.at_least else '≤'} {number(self.limit)} {unit}".strip()


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a figure for one sidecar configuration, beside the same figure
    for the direct call and for LiteLLM (NaN where a figure does not apply or was not run)."""

    figure: str
    unit: str
    config: str
    direct: float
    sidecar: float
    litellm: float
    target: Target | None = None
    note: str = ""


def number(value: float) -> str:
    """A figure with about three significant digits."""
    if math.isnan(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(numerator: float, denominator: float) -> str:
    """`numerator / denominator` as `1.23x`, or a dash when either is missing or zero."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return "-"
    value = numerator / denominator
    return f"{value:.3g}x"


def verdict(row: Row) -> str:
    if row.target is None:
        return ""
    return "met" if row.target.met(row.sidecar) else "**missed**"


HEADER = (
    "| Figure | Sidecar config | Direct | Sidecar | LiteLLM | Sidecar/Direct | Sidecar/LiteLLM "
    "| Target | Result |"
)


def table(rows: Iterable[Row]) -> list[str]:
    """The markdown table, one line per row."""
    lines = [HEADER, "|" + "---|" * 9]
    for row in rows:
        unit = f" ({row.unit})" if row.unit else ""
        target = row.target.text(row.unit) if row.target else ""
        note = f" {row.note}" if row.note else ""
        cells = [
            f"{row.figure}{unit}",
            row.config,
            number(row.direct),
            number(row.sidecar),
            number(row.litellm) + note,
            ratio(row.sidecar, row.direct),
            ratio(row.sidecar, row.litellm),
            target,
            verdict(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
