"""Edge: `switchboard budgets` — each budget's current window, read from the shared ledger.

Reads the config (RoutingPolicy + FeatureBudgets), then the Redis ledger (`--ledger`, else the
policy's `spec.ledger.redisURL`), and returns a table: budget, feature, period and its window,
spent, limit, remaining, percent used and state. Only reads: it never records or replays.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from switchboard.budget.decide import percent_used
from switchboard.budget.periods import Window, window_of
from switchboard.budget.state import budget_state
from switchboard.config.load import ConfigError, load_config
from switchboard.config.model import BudgetConfig
from switchboard.ledger.redis import LedgerUnavailable, RedisLedger

DEFAULT_NAMESPACE = "default"
_CENT_FRACTION = Decimal("0.000001")
_TENTH = Decimal("0.1")
NO_LEDGER = (
    "switchboard budgets: no shared ledger to read. The policy sets no spec.ledger.redisURL and "
    "no --ledger was given; an in-memory ledger lives only inside a sidecar (read its spend "
    "from the sidecar's /metrics, switchboard_budget_spent_usd)."
)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One budget and what its feature spent in the window that holds `now`."""

    budget: BudgetConfig
    window: Window
    spent: Decimal


def _usd(amount: Decimal) -> str:
    shown = amount.quantize(_CENT_FRACTION, rounding=ROUND_HALF_EVEN)
    return str(shown.copy_abs() if shown.is_zero() else shown)


def _percent(spent: Decimal, limit: Decimal) -> str:
    used = percent_used(spent, limit)
    return f"{used.quantize(_TENTH, rounding=ROUND_HALF_EVEN)}%" if used.is_finite() else "inf%"


def _window_text(window: Window) -> str:
    last_day = (window.end - timedelta(days=1)).date()
    return f"{window.period} {window.start.date().isoformat()}..{last_day.isoformat()}"


def budget_table(rows: Sequence[BudgetRow]) -> list[str]:
    """Pure: the rows as an aligned text table (USD to 6 decimals, percent to 1)."""
    header = ("BUDGET", "FEATURE", "PERIOD", "SPENT", "LIMIT", "REMAINING", "USED", "STATE")
    cells = [header]
    for row in rows:
        spec = row.budget.spec
        cells.append(
            (
                row.budget.name,
                spec.feature,
                _window_text(row.window),
                _usd(row.spent),
                _usd(spec.limit_usd),
                _usd(spec.limit_usd - row.spent),
                _percent(row.spent, spec.limit_usd),
                budget_state(row.spent, spec),
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    numeric = {3, 4, 5, 6}
    return [
        "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in cells
    ]


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


async def _rows(
    budgets: Sequence[BudgetConfig], url: str, namespace: str, now: datetime
) -> list[BudgetRow]:
    with tempfile.TemporaryDirectory(prefix="switchboard-budgets-") as scratch:
        # Reading never writes to the outbox; the ledger still needs a path of its own.
        ledger = RedisLedger(url, Path(scratch) / "outbox")
        try:
            rows = []
            for budget in budgets:
                window = window_of(budget.spec.period, now)
                totals = await ledger.totals(namespace, budget.spec.feature, window)
                rows.append(BudgetRow(budget, window, totals.total.cost))
            return rows
        finally:
            await ledger.close()


def budgets(
    config_path: Path, ledger_url: str | None, now: datetime, *, namespace: str | None = None
) -> tuple[bool, list[str]]:
    """(ok, lines to print): the budget table, or why there is none."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return False, [str(p) for p in exc.problems]
    url = ledger_url or config.spec.ledger.redis_url
    if url is None:
        return False, [NO_LEDGER]
    if not config.budgets:
        return True, [f"no FeatureBudgets in {config_path}"]
    ns = namespace or config.namespace or DEFAULT_NAMESPACE
    try:
        rows = asyncio.run(_rows(config.budgets, url, ns, now))
    except LedgerUnavailable as exc:
        return False, [f"switchboard budgets: cannot read {_without_credentials(url)}: {exc}"]
    return True, budget_table(rows)
