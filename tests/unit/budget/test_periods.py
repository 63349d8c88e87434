from datetime import UTC, datetime, timedelta, timezone

import pytest

from switchboard.budget.periods import window_of


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_daily_window_is_the_utc_calendar_day() -> None:
    w = window_of("daily", at("2026-11-23T23:59:59.999999+00:00"))
    assert (w.start, w.end) == (at("2026-11-23T00:00:00+00:00"), at("2026-11-24T00:00:00+00:00"))
    assert w.label == "daily:2026-11-23"


def test_weekly_window_starts_on_monday() -> None:
    sunday = window_of("weekly", at("2026-11-29T23:59:59+00:00"))
    monday = window_of("weekly", at("2026-11-30T00:00:00+00:00"))
    assert sunday.start == at("2026-11-23T00:00:00+00:00")
    assert sunday.end == monday.start == at("2026-11-30T00:00:00+00:00")
    assert monday.end - monday.start == timedelta(days=7)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        ("2026-02-14T10:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"),
        ("2026-12-31T23:00:00+00:00", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_monthly_window_is_the_calendar_month(now: str, start: str, end: str) -> None:
    w = window_of("monthly", at(now))
    assert (w.start, w.end) == (at(start), at(end))


def test_other_timezones_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    w = window_of("daily", datetime(2026, 11, 24, 8, 0, tzinfo=tokyo))
    assert w.start == datetime(2026, 11, 23, tzinfo=UTC)
