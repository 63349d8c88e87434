from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.ledger.base import SpendRecord
from switchboard.ledger.records import record_line, record_of_line
from switchboard.pricing.cost import Usage

RECORD = SpendRecord(
    id="0f1e",
    at=datetime(2026, 11, 30, 0, 0, 0, 123456, tzinfo=UTC),
    namespace="shop",
    feature="onboarding assistant ✓",
    team="growth",
    provider="openai",
    model="ft:gpt-4o:acme",
    route="default",
    usage=Usage(1200, 300, 200),
    cost=Decimal("0.001234567890123"),
    estimated=True,
)


def test_a_record_line_is_one_line_and_reads_back_equal() -> None:
    line = record_line(RECORD).decode()
    assert "\n" not in line
    assert record_of_line(line) == RECORD


@given(
    cost=st.decimals(allow_nan=False, allow_infinity=False, places=15),
    at=st.datetimes(timezones=st.just(timezone(timedelta(hours=-5)))),
    feature=st.text(min_size=1),
)
def test_cost_time_and_names_survive_the_line_exactly(
    cost: Decimal, at: datetime, feature: str
) -> None:
    record = SpendRecord("i", at, "ns", feature, "t", "p", "m", "r", Usage(1, 2, 0), cost)
    back = record_of_line(record_line(record).decode())
    assert back == record
    assert str(back.cost) == str(cost)


def _mutated(**changes: object) -> str:
    doc = json.loads(record_line(RECORD))
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[1, 2]",
        record_line(RECORD)[:40].decode(),  # a write torn by a crash
        _mutated(v=2),
        _mutated(id=None),
        _mutated(cost="12,5"),
        _mutated(cost="NaN"),
        _mutated(cost=1.5),
        _mutated(input_tokens=-1),
        _mutated(output_tokens=True),
        _mutated(at="yesterday"),
        _mutated(estimated="no"),
    ],
)
def test_a_line_that_holds_no_record_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        record_of_line(line)
