from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import (
    Connection,
    Encoder,  # type: ignore[attr-defined]
)

from switchboard.budget.periods import window_of
from switchboard.ledger.base import SpendRecord, Totals, WindowTotals
from switchboard.ledger.layout import (
    MAX_RECORDS_PER_CALL,
    PICO_PER_USD,
    RECORD_TTL_SECONDS,
    apply_commands,
    dollars,
    packed_record,
    picodollars,
    split_picodollars,
    window_key,
    window_totals,
)
from switchboard.pricing.cost import UnitPrice, Usage, cost_of

AT = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)


def record(cost: str = "0.001", *, model: str = "gpt-4o", at: datetime = AT) -> SpendRecord:
    return SpendRecord(
        id="r1",
        at=at,
        namespace="shop",
        feature="onboarding",
        team="growth",
        provider="openai",
        model=model,
        route="default",
        usage=Usage(1200, 300, 200),
        cost=Decimal(cost),
    )


# pico-dollars


@pytest.mark.parametrize(
    ("cost", "pico"),
    [
        ("0", 0),
        ("0.000000000001", 1),
        ("1.5", 1_500_000_000_000),
        ("12345.678901234567", 12_345_678_901_234_567),
        ("12345.6789012345675", 12_345_678_901_234_568),
        ("12345.6789012345665", 12_345_678_901_234_566),
        ("0.0000000000005", 0),  # a tie goes to the even neighbour
        ("0.0000000000015", 2),
        ("0.0000000000025", 2),
        ("0.00000000000050001", 1),
        ("-0.0000000000015", -2),
        ("1E+9", 10**21),
    ],
)
def test_costs_become_whole_picodollars_rounded_half_even(cost: str, pico: int) -> None:
    assert picodollars(Decimal(cost)) == pico


@pytest.mark.parametrize("cost", ["NaN", "Infinity", "-Infinity"])
def test_a_cost_that_is_no_amount_is_refused(cost: str) -> None:
    with pytest.raises(ValueError, match="finite"):
        picodollars(Decimal(cost))


@given(
    tokens=st.tuples(*[st.integers(0, 10_000_000)] * 3),
    prices=st.tuples(*[st.integers(0, 100_000_000)] * 3),
)
def test_any_price_with_six_decimals_per_mtok_is_stored_exactly(
    tokens: tuple[int, int, int], prices: tuple[int, int, int]
) -> None:
    price = UnitPrice(*(Decimal(p).scaleb(-6) for p in prices))
    cost = cost_of(Usage(*tokens), price)
    assert dollars(*split_picodollars(picodollars(cost))) == cost


@given(st.integers(-(10**30), 10**30))
def test_split_picodollars_round_trips_with_the_rest_below_one_dollar(pico: int) -> None:
    usd, rest = split_picodollars(pico)
    assert 0 <= rest < PICO_PER_USD
    assert usd * PICO_PER_USD + rest == pico
    assert dollars(usd, rest) == Decimal(f"{pico}E-12")


def test_dollars_of_a_huge_sum_is_still_exact() -> None:
    assert dollars(9 * 10**17, 999_999_999_999) == Decimal("900000000000000000.999999999999")


# keys and script arguments

SHA = "0" * 40


class ScriptCall(NamedTuple):
    keys: tuple[str, ...]
    args: tuple[str, ...]


def parsed(command: bytes) -> list[str]:
    """A command's arguments, read back from its RESP bytes by hiredis."""
    reader = hiredis.Reader()
    reader.feed(command)
    parts = reader.gets()
    assert reader.gets() is False, "one command, nothing after it"
    return [part.decode() for part in parts]


def apply_calls(prefix: str, records: list[SpendRecord]) -> list[ScriptCall]:
    calls = []
    for command in apply_commands(SHA, [packed_record(prefix, r) for r in records]):
        name, sha, count, *rest = parsed(command)
        assert (name, sha) == ("EVALSHA", SHA)
        calls.append(ScriptCall(tuple(rest[: int(count)]), tuple(rest[int(count) :])))
    return calls


def test_a_call_names_the_three_windows_then_the_record_all_in_one_hash_slot() -> None:
    (call,) = apply_calls("sb", [record()])
    assert call.keys == (
        "sb:spend:{shop}:onboarding:daily:2026-11-29",
        "sb:spend:{shop}:onboarding:weekly:2026-11-23",
        "sb:spend:{shop}:onboarding:monthly:2026-11-01",
        "sb:rec:{shop}:r1",
    )


def test_a_call_passes_cost_as_dollars_and_picodollars_and_the_windows_expiries() -> None:
    (call,) = apply_calls("sb", [record("2.000000000003")])
    ttl, groups, *expiries = call.args[:5]
    assert (ttl, groups) == (str(RECORD_TTL_SECONDS), "1")
    assert [datetime.fromtimestamp(int(e), UTC).date().isoformat() for e in expiries] == [
        "2027-02-28",  # the day ends Nov 30: + 90 days
        "2027-02-28",  # the week (from Monday Nov 23) ends Nov 30 too
        "2027-03-01",  # the month ends Dec 1
    ]
    assert call.args[5:] == (
        "1",
        "model:growth/openai/gpt-4o",
        "2",
        "3",
        "1200",
        "300",
        "200",
        "1",
    )


def test_records_of_one_feature_and_day_share_their_window_keys() -> None:
    next_day = AT + timedelta(seconds=1)  # Monday Nov 30: a new day and week, the same month
    records = [
        record()._replace(id="a"),
        record()._replace(id="b", feature="search"),
        record()._replace(id="c"),
        record()._replace(id="d", at=next_day),
    ]
    (call,) = apply_calls("sb", records)
    assert call.args[1] == "3"
    assert call.keys[9:] == (
        "sb:rec:{shop}:a",
        "sb:rec:{shop}:b",
        "sb:rec:{shop}:c",
        "sb:rec:{shop}:d",
    )
    assert call.keys[6:9] == (
        "sb:spend:{shop}:onboarding:daily:2026-11-30",
        "sb:spend:{shop}:onboarding:weekly:2026-11-30",
        "sb:spend:{shop}:onboarding:monthly:2026-11-01",
    )
    groups = call.args[2 + 9 :: 8]  # after the TTL, the count and 9 expiries
    assert groups == ("1", "2", "1", "3")


def test_calls_split_by_namespace_and_size() -> None:
    other = [record()._replace(id=f"o{i}", namespace="ops") for i in range(3)]
    many = [record()._replace(id=f"m{i}") for i in range(MAX_RECORDS_PER_CALL + 1)]
    calls = apply_calls("sb", [*many[:2], *other, *many[2:]])
    slots = [{key.split("{")[1].split("}")[0] for key in call.keys} for call in calls]
    assert slots == [{"shop"}, {"shop"}, {"ops"}]
    assert [len(call.keys) - 3 for call in calls] == [MAX_RECORDS_PER_CALL, 1, 3]


def test_window_key_keeps_a_feature_name_with_colons_unambiguous() -> None:
    window = window_of("daily", AT)
    assert window_key("sb", "shop", "a:b", window) == "sb:spend:{shop}:a:b:daily:2026-11-29"


# reading a window hash back


def test_window_totals_sums_the_model_slices_split_at_the_last_colon() -> None:
    fields = {
        "model:growth/openai/ft:gpt-4o:acme:usd": "3",
        "model:growth/openai/ft:gpt-4o:acme:pico_usd": "750000000000",
        "model:growth/openai/ft:gpt-4o:acme:requests": "2",
        "model:growth/openai/ft:gpt-4o:acme:input_tokens": "10",
        "model:core/mistral/small:usd": "0",
        "model:core/mistral/small:pico_usd": "500000000001",
        "model:core/mistral/small:requests": "1",
        "model:core/mistral/small:output_tokens": "20",
        "model:core/mistral/small:cached_input_tokens": "5",
        "model:core/mistral/small:some_future_counter": "7",
        "total:usd": "99",  # a slice this version does not write is not read either
        "stray": "1",
    }
    assert window_totals(fields) == WindowTotals(
        Totals(Decimal("4.250000000001"), 3, Usage(10, 20, 5)),
        {
            "core/mistral/small": Totals(Decimal("0.500000000001"), 1, Usage(0, 20, 5)),
            "growth/openai/ft:gpt-4o:acme": Totals(Decimal("3.75"), 2, Usage(10, 0, 0)),
        },
    )


def test_window_totals_of_a_missing_hash_is_zero() -> None:
    assert window_totals({}) == WindowTotals()


@given(
    st.lists(
        st.tuples(st.text(min_size=1), st.text(), st.text(min_size=1), st.sampled_from("ab")),
        min_size=1,
        max_size=20,
    )
)
def test_a_command_is_the_bytes_redis_py_sends_for_its_arguments(
    names: list[tuple[str, str, str, str]],
) -> None:
    packer = Connection(encoder_class=Encoder)
    records = [
        record()._replace(id=f"r{i}", feature=feature, team=team, model=model, namespace=ns)
        for i, (feature, team, model, ns) in enumerate(names)
    ]
    commands = apply_commands(SHA, [packed_record("sb", r) for r in records])
    assert len(commands) == len({r.namespace for r in records})
    for command in commands:
        assert command == b"".join(packer.pack_command(*parsed(command)))
