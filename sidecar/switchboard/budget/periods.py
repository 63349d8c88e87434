"""Pure: budget periods as UTC calendar windows — days, ISO weeks (from Monday), months."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) of one period, in UTC."""

    period: Period
    start: datetime
    end: datetime
    label: str = field(init=False, compare=False, repr=False)
    """Stable name of the window, used in ledger keys: `daily:2026-11-23` (computed once: a
    request reads it several times)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.period}:{self.start.date().isoformat()}")


def window_of(period: Period, now: datetime) -> Window:
    """The window of `period` that contains `now` (naive datetimes are taken as UTC)."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return Window(period, day, day + timedelta(days=1))
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return Window(period, start, start + timedelta(days=7))
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Window(period, start, end)
