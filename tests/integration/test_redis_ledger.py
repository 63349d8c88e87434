"""The Redis ledger against a real redis-server: exact totals, exactly-once, outages, replay."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from switchboard.budget.periods import PERIODS, Window, window_of
from switchboard.ledger.base import SpendRecord, WindowTotals
from switchboard.ledger.layout import window_key
from switchboard.ledger.memory import MemoryLedger
from switchboard.ledger.outbox import Outbox
from switchboard.ledger.records import record_line
from switchboard.ledger.redis import LedgerUnavailable, RedisLedger
from switchboard.pricing.cost import UnitPrice, Usage, cost_of
from tests.support.redis_server import RedisServer

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NS = "shop"
FEATURE = "onboarding"
LedgerFactory = Callable[..., RedisLedger]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as redis_server:
        yield redis_server


@pytest.fixture
async def ledgers(tmp_path: Path, server: RedisServer) -> AsyncIterator[LedgerFactory]:
    """`ledgers()` -> a started-on-demand RedisLedger with its own outbox; all closed at the end."""
    made: list[RedisLedger] = []

    def make(outbox: str | None = None, replay_interval: float = 0.05) -> RedisLedger:
        path = tmp_path / (outbox or f"outbox-{len(made)}.jsonl")
        ledger = RedisLedger(
            server.url,
            path,
            replay_interval=replay_interval,
        )
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        await ledger.close()


def spend(
    n: int,
    cost: Decimal | str,
    *,
    at: datetime = AT,
    feature: str = FEATURE,
    model: str = "gpt-4o",
    team: str = "growth",
) -> SpendRecord:
    return SpendRecord(
        id=f"rec-{n}",
        at=at,
        namespace=NS,
        feature=feature,
        team=team,
        provider="openai",
        model=model,
        route="default",
        usage=Usage(100 + n, 10 + n, n % 7),
        cost=Decimal(cost),
    )


def awkward_costs(count: int, seed: int = 7) -> list[SpendRecord]:
    """Costs with 12 decimals, costs priced from odd per-MTok prices, costs over a dollar."""
    rng = random.Random(seed)
    price = UnitPrice(Decimal("0.15"), Decimal("0.600001"), Decimal("0.075"))
    records = []
    for n in range(count):
        kind = n % 3
        if kind == 0:
            cost = Decimal(rng.randrange(0, 5 * 10**12)).scaleb(-12)
        elif kind == 1:
            cost = cost_of(Usage(rng.randrange(10**6), rng.randrange(10**5), 0), price)
        else:
            cost = Decimal("0.999999999999") + Decimal(n).scaleb(-12)
        model = ("gpt-4o", "gpt-4o-mini", "ft:gpt-4o:acme")[rng.randrange(3)]
        records.append(spend(n, cost, model=model, team=rng.choice(["growth", "core"])))
    return records


async def reference(records: list[SpendRecord], window: Window) -> WindowTotals:
    memory = MemoryLedger()
    for record in records:
        await memory.record(record)
    return await memory.totals(NS, FEATURE, window)


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until `check()` holds."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 (polls files and Redis: no event to wait on)
            await asyncio.sleep(0.02)


def outbox_lines(path: Path) -> list[str]:
    """Every line waiting in the outbox at `path`: its `.replaying` file first, then itself."""
    replaying = path.with_name(path.name + ".replaying")
    return [line for f in (replaying, path) if f.exists() for line in f.read_text().splitlines()]


def drained(path: Path) -> Callable[[], bool]:
    """Nothing waits: no `.replaying` file, and the outbox is empty (the applier creates the
    next one as it takes a batch) or gone."""
    replaying = path.with_name(path.name + ".replaying")
    return lambda: not replaying.exists() and (not path.exists() or path.stat().st_size == 0)


# exactness


async def test_many_awkward_costs_sum_to_the_exact_decimal_sum(ledgers: LedgerFactory) -> None:
    ledger = ledgers()
    records = awkward_costs(240)
    for record in records:
        await ledger.record(record)
    await ledger.flush()
    for period in PERIODS:
        window = window_of(period, AT)
        totals = await ledger.totals(NS, FEATURE, window)
        assert totals.total.cost == sum((r.cost for r in records), Decimal(0))
        assert totals == await reference(records, window)
    assert len(totals.by_model) == 6


async def test_pico_part_carries_into_dollars_and_finer_costs_round_half_even(
    ledgers: LedgerFactory, server: RedisServer
) -> None:
    ledger = ledgers()
    await ledger.record(spend(1, "0.7"))
    await ledger.record(spend(2, "0.6"))
    await ledger.record(spend(3, "0.0000000000025"))  # 2.5 pico-dollars: the tie goes to 2
    await ledger.flush()
    window = window_of("daily", AT)
    fields = server.client().hgetall(window_key("switchboard", NS, FEATURE, window))
    slice_ = "model:growth/openai/gpt-4o"
    assert (fields[f"{slice_}:usd"], fields[f"{slice_}:pico_usd"]) == ("1", "300000000002")
    assert not any(name.startswith("total:") for name in fields)
    assert (await ledger.totals(NS, FEATURE, window)).total.cost == Decimal("1.300000000002")


async def test_one_batch_of_features_days_and_repeats_counts_each_record_once(
    ledgers: LedgerFactory,
) -> None:
    ledger = ledgers()
    early = spend(0, "0.5")
    await ledger.record(early)
    await ledger.flush()
    next_day = AT + timedelta(days=1)
    records = [spend(n, "0.333333333333", feature="search", at=next_day) for n in range(100, 160)]
    records += awkward_costs(60)[1:]
    for record in [*records, early, *records[:30]]:  # repeats within the batch and of a past one
        await ledger.record(record)
    await ledger.flush()
    memory = MemoryLedger()
    for record in [early, *records]:
        await memory.record(record)
    for feature in (FEATURE, "search"):
        for at in (AT, next_day):
            for period in PERIODS:
                window = window_of(period, at)
                expected = await memory.totals(NS, feature, window)
                assert await ledger.totals(NS, feature, window) == expected


async def test_values_beyond_twelve_digits_are_added_exactly_in_a_batch(
    ledgers: LedgerFactory,
) -> None:
    ledger = ledgers()
    huge = spend(1, "123456789012345679.9", feature="whale")._replace(
        usage=Usage(10**17 + 1, 3, 10**16 + 3)  # beyond 2^53, where a sum of Lua numbers rounds
    )
    small = spend(2, "0.000000000001", feature="whale")
    await ledger.record(huge)
    await ledger.record(small)
    await ledger.flush()
    totals = await ledger.totals(NS, "whale", window_of("monthly", AT))
    assert totals.total.cost == Decimal("123456789012345679.900000000001")
    assert totals.total.usage == Usage(10**17 + 1 + 102, 3 + 12, 10**16 + 3 + 2)
    assert totals.total.requests == 2


# exactly once


async def test_the_same_record_twice_counts_once_also_across_ledgers(
    ledgers: LedgerFactory,
) -> None:
    first, second = ledgers(), ledgers()
    record = spend(1, "0.25")
    await first.record(record)
    await first.record(record)
    await second.record(record)
    await first.flush()
    await second.flush()
    totals = await first.totals(NS, FEATURE, window_of("weekly", AT))
    assert (totals.total.cost, totals.total.requests) == (Decimal("0.25"), 1)


async def test_a_redis_that_forgot_the_script_gets_it_again_and_counts_each_record_once(
    ledgers: LedgerFactory, server: RedisServer
) -> None:
    ledger = ledgers()
    await ledger.record(spend(1, "0.25"))
    await ledger.flush()
    client = aioredis.Redis.from_url(server.url)
    await client.script_flush()  # as after a restart without persistence of scripts
    await ledger.record(spend(2, "0.5"))
    await ledger.record(spend(1, "0.25"))  # a replay of the first: still counted once
    await ledger.flush()
    await client.aclose()
    totals = await ledger.totals(NS, FEATURE, window_of("weekly", AT))
    assert (totals.total.cost, totals.total.requests) == (Decimal("0.75"), 2)
    assert outbox_lines(ledger._outbox.path) == []


# windows and keys


async def test_records_land_in_the_day_week_and_month_of_their_time(
    ledgers: LedgerFactory,
) -> None:
    ledger = ledgers()
    sunday = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 0, 0, 0, tzinfo=UTC)  # Nov 30 2026 is a Monday
    december = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
    for n, (at, cost) in enumerate([(sunday, "1"), (monday, "2"), (december, "4")]):
        await ledger.record(spend(n, cost, at=at))
    await ledger.flush()

    async def spent(period: str, at: datetime) -> Decimal:
        window = window_of(period, at)  # type: ignore[arg-type]
        return (await ledger.totals(NS, FEATURE, window)).total.cost

    assert [await spent("daily", t) for t in (sunday, monday, december)] == [1, 2, 4]
    assert [await spent("weekly", t) for t in (sunday, monday, december)] == [1, 6, 6]
    assert [await spent("monthly", t) for t in (sunday, monday, december)] == [3, 3, 4]


async def test_keys_share_a_hash_tag_and_expire(
    ledgers: LedgerFactory, server: RedisServer
) -> None:
    ledger = ledgers()
    await ledger.record(spend(1, "0.5"))
    await ledger.flush()
    client = server.client()
    windows = [window_of(p, AT) for p in PERIODS]
    keys = {window_key("switchboard", NS, FEATURE, w): w for w in windows}
    assert set(client.keys("*")) == {"switchboard:rec:{shop}:rec-1", *keys}
    assert 35 * 86400 - 60 < client.ttl("switchboard:rec:{shop}:rec-1") <= 35 * 86400
    for key, window in keys.items():
        assert client.expiretime(key) == int((window.end + timedelta(days=90)).timestamp())


# outages


async def test_record_never_waits_for_redis_and_an_outage_keeps_records_in_the_outbox(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    ledger = ledgers(replay_interval=3600)
    await ledger.record(spend(0, "0.1"))
    await ledger.flush()
    assert outbox_lines(tmp_path / "outbox-0.jsonl") == []
    server.stop()
    records = awkward_costs(30)[1:]
    for record in records:
        started = time.monotonic()
        await ledger.record(record)
        assert time.monotonic() - started < 0.1
    await ledger.flush()  # Redis refuses: the records stay, fsync'd
    assert outbox_lines(tmp_path / "outbox-0.jsonl") == [record_line(r).decode() for r in records]
    with pytest.raises(LedgerUnavailable):
        await ledger.totals(NS, FEATURE, window_of("daily", AT))


async def test_redis_that_hangs_costs_one_timeout_then_records_go_to_the_outbox(
    tmp_path: Path,
) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    silent = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    ledger = RedisLedger(f"redis://127.0.0.1:{port}/0", tmp_path / "outbox", replay_interval=3600)
    try:
        for n in range(5):
            started = time.monotonic()
            await ledger.record(spend(n, "0.1"))
            assert time.monotonic() - started < 0.1
        started = time.monotonic()
        await ledger.flush()  # one operation timeout, then Redis counts as down
        assert time.monotonic() - started < 1.5
        for n in range(5, 10):
            started = time.monotonic()
            await ledger.record(spend(n, "0.1"))
            assert time.monotonic() - started < 0.1
        await ledger.flush()
        assert len(outbox_lines(tmp_path / "outbox")) == 10
    finally:
        silent.close()  # refuse new connections, so that close() does not wait for it
        await ledger.close()


async def test_restarted_redis_gets_the_outbox_replayed_exactly(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    ledger = ledgers()
    await ledger.start()
    records = awkward_costs(90)
    for record in records[:30]:
        await ledger.record(record)
    await ledger.flush()
    server.client().save()  # the restarted server loads this snapshot
    server.stop()
    for record in records[30:]:
        await ledger.record(record)
    await ledger.flush()
    assert len(outbox_lines(tmp_path / "outbox-0.jsonl")) == 60
    server.start()
    await eventually(drained(tmp_path / "outbox-0.jsonl"))
    window = window_of("monthly", AT)
    assert await ledger.totals(NS, FEATURE, window) == await reference(records, window)


async def test_an_outbox_replayed_twice_counts_once(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    ledger = ledgers(replay_interval=3600)
    outbox = tmp_path / "outbox-0.jsonl"
    server.stop()
    records = awkward_costs(40)
    for record in records:
        await ledger.record(record)
    await ledger.flush()
    copy = "".join(line + "\n" for line in outbox_lines(outbox)).encode()
    server.start()
    await ledger.replay()  # (or the replay task, which may have found Redis first)
    assert drained(outbox)()
    # A crash after applying but before deleting leaves the file behind: replay it again.
    outbox.with_name(outbox.name + ".replaying").write_bytes(copy)
    outbox.write_bytes(copy)
    assert await ledger.replay() == 0
    assert drained(outbox)()
    window = window_of("weekly", AT)
    assert await ledger.totals(NS, FEATURE, window) == await reference(records, window)


async def test_start_replays_a_leftover_replaying_file_and_a_torn_line_is_kept_aside(
    ledgers: LedgerFactory, tmp_path: Path
) -> None:
    records = awkward_costs(20)
    outbox = tmp_path / "box.jsonl"
    lines = [record_line(r).decode() for r in records]
    outbox.with_name("box.jsonl.replaying").write_text("\n".join(lines[:10]) + "\n")
    outbox.write_text("\n".join(lines[10:]) + "\n" + lines[0][:25])  # killed mid-write
    ledger = ledgers("box.jsonl")
    await ledger.start()
    await eventually(drained(outbox))
    window = window_of("daily", AT)
    assert await ledger.totals(NS, FEATURE, window) == await reference(records, window)
    assert outbox.with_name("box.jsonl.rejected").read_text() == lines[0][:25] + "\n"


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    records = awkward_costs(3)
    path = tmp_path / "box.jsonl"
    path.write_bytes(record_line(records[0]) + b"\n" + record_line(records[1])[:30])
    outbox = Outbox(path)
    outbox.append(record_line(records[2]))
    outbox.close()
    assert outbox_lines(path) == [
        record_line(records[0]).decode(),
        record_line(records[1])[:30].decode(),
        record_line(records[2]).decode(),
    ]


async def test_close_replays_what_the_outbox_holds(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    ledger = ledgers(replay_interval=3600)
    await ledger.start()
    server.stop()
    records = awkward_costs(15)
    for record in records:
        await ledger.record(record)
    server.start()
    await ledger.close()  # the SIGTERM path
    assert drained(tmp_path / "outbox-0.jsonl")()
    reader = ledgers()
    window = window_of("monthly", AT)
    assert await reader.totals(NS, FEATURE, window) == await reference(records, window)


# concurrency


async def test_concurrent_records_from_two_ledgers_are_exact(ledgers: LedgerFactory) -> None:
    first, second = ledgers(), ledgers()
    records = awkward_costs(400)
    await asyncio.gather(*((first if i % 2 else second).record(r) for i, r in enumerate(records)))
    await asyncio.gather(first.flush(), second.flush())
    window = window_of("weekly", AT)
    totals = await first.totals(NS, FEATURE, window)
    assert totals.total.requests == 400
    assert totals == await reference(records, window)


async def test_concurrent_records_through_an_outage_count_once(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    first, second = ledgers(), ledgers()
    records = awkward_costs(300)
    thirds = [records[:100], records[100:200], records[200:]]

    async def send(batch: list[SpendRecord]) -> None:
        await asyncio.gather(*((first, second)[i % 2].record(r) for i, r in enumerate(batch)))

    await send(thirds[0])
    await asyncio.gather(first.flush(), second.flush())
    server.client().save()
    server.stop()
    await send(thirds[1])
    server.start()
    await send(thirds[2])
    for name in ("outbox-0.jsonl", "outbox-1.jsonl"):
        await eventually(drained(tmp_path / name))
    window = window_of("daily", AT)
    assert await first.totals(NS, FEATURE, window) == await reference(records, window)


# switchboard budgets


def _policy(redis_url: str | None) -> dict[str, object]:
    spec: dict[str, object] = {
        "providers": [
            {"name": "openai", "baseURL": "http://127.0.0.1:9/v1", "apiKey": {"env": "K"}}
        ],
        "models": [
            {"name": "gpt-4o", "provider": "openai"},
            {"name": "gpt-4o-mini", "provider": "openai"},
        ],
        "routes": [{"name": "default", "targets": [{"model": "gpt-4o"}]}],
    }
    if redis_url:
        spec["ledger"] = {"redisURL": redis_url}
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": spec,
    }


def _budget(name: str, feature: str, limit: str, period: str) -> dict[str, object]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "feature": feature,
            "limitUSD": limit,
            "period": period,
            "thresholds": [
                {"percent": 80, "action": "alert"},
                {"percent": 100, "action": "downgrade", "downgradeTo": "gpt-4o-mini"},
                {"percent": 120, "action": "block"},
            ],
        },
    }


def _write_config(path: Path, redis_url: str | None) -> Path:
    budgets = [
        _budget("assistant-weekly", "onboarding", "10", "weekly"),
        _budget("support-daily", "support", "1", "daily"),
        _budget("search-monthly", "search", "100", "monthly"),
    ]
    path.write_text(yaml.safe_dump_all([_policy(redis_url), *budgets], sort_keys=False))
    return path


def _budgets_cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "switchboard.cli", "budgets", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


async def test_budgets_command_prints_each_budgets_window_from_redis(
    ledgers: LedgerFactory, server: RedisServer, tmp_path: Path
) -> None:
    ledger = ledgers()
    wednesday = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for n, (at, feature, cost) in enumerate(
        [
            (datetime(2026, 11, 23, 0, 0, tzinfo=UTC), "onboarding", "8.4"),  # Monday
            (wednesday, "onboarding", "0.1"),
            (datetime(2026, 11, 22, 23, 59, tzinfo=UTC), "onboarding", "50"),  # last week
            (wednesday, "support", "1.2"),
        ]
    ):
        await ledger.record(spend(n, cost, at=at, feature=feature))
    await ledger.flush()
    config = _write_config(tmp_path / "policy.yaml", server.url)

    done = _budgets_cli("--config", str(config), "--at", "2026-11-25T18:00:00Z")
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line) for line in done.stdout.splitlines()]
    assert rows == [  # in name order
        ["BUDGET", "FEATURE", "PERIOD", "SPENT", "LIMIT", "REMAINING", "USED", "STATE"],
        [
            "assistant-weekly",
            "onboarding",
            "weekly 2026-11-23..2026-11-29",
            "8.500000",
            "10.000000",
            "1.500000",
            "85.0%",
            "Warning",
        ],
        [
            "search-monthly",
            "search",
            "monthly 2026-11-01..2026-11-30",
            "0.000000",
            "100.000000",
            "100.000000",
            "0.0%",
            "Ok",
        ],
        [
            "support-daily",
            "support",
            "daily 2026-11-25..2026-11-25",
            "1.200000",
            "1.000000",
            "-0.200000",
            "120.0%",
            "Blocked",
        ],
    ]

    no_ledger = _budgets_cli("--config", str(_write_config(tmp_path / "alone.yaml", None)))
    assert no_ledger.returncode == 1
    assert "in-memory ledger lives only inside a sidecar" in no_ledger.stderr

    server.stop()
    down = _budgets_cli("--config", str(config), "--ledger", server.url)
    assert down.returncode == 1
    assert "cannot read redis://127.0.0.1" in down.stderr
