"""Several sidecar processes sharing one real Redis ledger: exact money, outages, budgets."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from switchboard.budget.periods import window_of
from switchboard.ledger.redis import RedisLedger
from tests.integration.conftest import SidecarFactory, client_for
from tests.support.mock_provider import MockProvider
from tests.support.redis_server import RedisServer
from tests.support.sidecar import Sidecar, policy

# Awkward prices: every cost has many decimal places and floats would drift.
PRICE = {"inputPerMTok": "1.23", "outputPerMTok": "4.56"}
IN, OUT = Decimal("1.23"), Decimal("4.56")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    with MockProvider("shared") as provider:
        yield provider


def shared_policy(mock: MockProvider, redis_url: str, **model: Any) -> dict[str, Any]:
    return policy(
        [{"name": "shared", "baseURL": mock.url}],
        [{"name": "m", "provider": "shared", "price": PRICE, **model}],
        [{"name": "main", "targets": [{"model": "m"}], "retry": {"attempts": 1}}],
        ledger={"redisURL": redis_url},
    )


def start_three(
    sidecars: SidecarFactory, doc: dict[str, Any], tmp_path: Path, *extra: dict[str, Any]
) -> list[Sidecar]:
    config = tmp_path / "policy.yaml"
    out = []
    for i in range(3):
        args = [
            "--outbox",
            str(tmp_path / f"outbox-{i}.jsonl"),
            "--feature",
            "checkout",
            "--namespace",
            "test",
        ]
        out.append(sidecars(doc, *extra, args=args, config=config if i else None))
        config = out[0].config  # type: ignore[attr-defined]
    return out


def ask(sidecar: Sidecar, i: int) -> Decimal:
    raw = client_for(sidecar).chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "user", "content": "x" * (i % 37)}],
        max_tokens=1 + i % 23,
    )
    return Decimal(raw.headers["x-switchboard-cost-usd"])


def ledger_total(url: str, tmp_path: Path) -> Decimal:
    async def read() -> Decimal:
        ledger = RedisLedger(url, tmp_path / "reader-outbox.jsonl")
        try:
            now = datetime.now(UTC)
            totals = await ledger.totals("test", "checkout", window_of("monthly", now))
            return totals.total.cost
        finally:
            await ledger.close()

    return asyncio.run(read())


def billed(mock: MockProvider) -> Decimal:
    usage = mock.stats()["by_model"]["m"]
    return (usage["input_tokens"] * IN + usage["output_tokens"] * OUT) / 1_000_000


def test_three_sidecars_account_to_the_exact_decimal(
    mock: MockProvider, redis_server: RedisServer, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    trio = start_three(sidecars, shared_policy(mock, redis_server.url), tmp_path)
    with ThreadPoolExecutor(max_workers=12) as pool:
        costs = list(pool.map(lambda i: ask(trio[i % 3], i), range(150)))
    # Records reach Redis moments after their answers (and all of them before a sidecar stops).
    converged = asyncio.run(
        _wait_for(lambda: ledger_total(redis_server.url, tmp_path) == sum(costs), 5.0)
    )
    assert converged, (ledger_total(redis_server.url, tmp_path), sum(costs))
    for sidecar in trio:
        sidecar.stop()
    assert ledger_total(redis_server.url, tmp_path) == sum(costs) == billed(mock)


def test_redis_outage_mid_traffic_loses_nothing_and_counts_nothing_twice(
    mock: MockProvider, redis_server: RedisServer, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    trio = start_three(sidecars, shared_policy(mock, redis_server.url), tmp_path)
    costs: list[Decimal] = []
    errors: list[BaseException] = []
    outage_seen = threading.Event()

    def traffic(worker: int) -> None:
        for i in range(40):
            try:
                costs.append(ask(trio[(worker + i) % 3], i))
            except BaseException as exc:  # any failed request fails the test
                errors.append(exc)
            if i == 20 and worker == 0:
                outage_seen.wait(10)

    with ThreadPoolExecutor(max_workers=6) as pool:
        running = [pool.submit(traffic, w) for w in range(6)]
        with contextlib.suppress(redis.ConnectionError):
            redis_server.client().shutdown(save=True)  # saves, then exits: an outage
        for i in range(20):  # traffic goes on while Redis is down
            costs.append(ask(trio[i % 3], 100 + i))
        outboxes = list(tmp_path.glob("outbox-*.jsonl"))
        assert any(p.stat().st_size for p in outboxes), "records should wait in the outbox"
        outage_seen.set()
        redis_server.start()  # back, with what it had saved
        for future in running:
            future.result()
    assert errors == []
    deadline = asyncio.run(
        _wait_for(lambda: ledger_total(redis_server.url, tmp_path) == sum(costs), 15.0)
    )
    assert deadline, (ledger_total(redis_server.url, tmp_path), sum(costs))
    assert sum(costs) == billed(mock)
    for sidecar in trio:  # SIGTERM replays the rest; nothing may be counted twice
        sidecar.stop()
    assert ledger_total(redis_server.url, tmp_path) == sum(costs)


def assert_ledger_settles_at(
    expected: Decimal,
    sidecar: Sidecar,
    redis_server: RedisServer,
    mock: MockProvider,
    tmp_path: Path,
) -> None:
    """The ledger reaches `expected` (the sidecar replays what an earlier one left in the
    outbox), stays there once the sidecar has stopped, and equals what the mock billed."""
    settled = asyncio.run(
        _wait_for(lambda: ledger_total(redis_server.url, tmp_path) == expected, 15.0)
    )
    assert settled, (ledger_total(redis_server.url, tmp_path), expected)
    sidecar.stop()
    assert ledger_total(redis_server.url, tmp_path) == expected == billed(mock)


async def _wait_for(condition: Any, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.1)
    return False


def test_overspend_past_a_block_is_bounded_by_requests_in_flight(
    mock: MockProvider, redis_server: RedisServer, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    cents = {"inputPerMTok": 0, "outputPerMTok": 10_000}  # $0.01 a token, $0.10 a request
    budget = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": {"name": "checkout", "namespace": "test"},
        "spec": {
            "feature": "checkout",
            "limitUSD": 3,
            "period": "monthly",
            "thresholds": [{"percent": 100, "action": "block"}],
        },
    }
    doc = shared_policy(mock, redis_server.url)
    doc["spec"]["models"][0]["price"] = cents
    trio = start_three(sidecars, doc, tmp_path, budget)
    workers = 9
    blocked = threading.Event()

    def hammer(worker: int) -> int:
        served = 0
        client = client_for(trio[worker % 3])
        for _ in range(40):
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "go"}], max_tokens=10
                )
                served += 1
            except openai.RateLimitError:
                blocked.set()
        return served

    with ThreadPoolExecutor(max_workers=workers) as pool:
        served = sum(pool.map(hammer, range(workers)))
    assert blocked.is_set()
    for sidecar in trio:
        sidecar.stop()  # every record is in Redis once its sidecar has stopped
    spent = ledger_total(redis_server.url, tmp_path)
    per_request = Decimal("0.10")
    assert spent == served * per_request
    # Every paid attempt was covered by a lease, and all leases stay below the block limit:
    # the spend cannot reach it. It falls short by at most the unused lease of each sidecar.
    assert spent < Decimal(3)
    assert spent >= Decimal(3) - per_request - 3 * per_request


def test_sigkill_loses_no_record_of_a_served_request(
    mock: MockProvider, redis_server: RedisServer, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    doc = shared_policy(mock, redis_server.url)
    outbox = ["--outbox", str(tmp_path / "outbox.jsonl"), "--feature", "checkout"]
    args = [*outbox, "--namespace", "test"]
    first = sidecars(doc, args=args)
    costs = [ask(first, i) for i in range(10)]  # in the outbox before each answer, then Redis
    with contextlib.suppress(redis.ConnectionError):
        redis_server.client().shutdown(save=True)
    costs += [ask(first, 10 + i) for i in range(10)]  # recorded in the fsync'd outbox
    first.signal(signal.SIGKILL)
    first.wait(10)
    redis_server.start()
    # A new sidecar on the same outbox (the pod's emptyDir survives a container restart).
    second = sidecars(args=args, config=first.config)  # type: ignore[attr-defined]
    assert_ledger_settles_at(sum(costs), second, redis_server, mock, tmp_path)


def test_answers_never_wait_for_redis_and_sigkill_then_loses_no_record(
    mock: MockProvider, redis_server: RedisServer, sidecars: SidecarFactory, tmp_path: Path
) -> None:
    # Redis holds every write (CLIENT PAUSE WRITE): the answers still come, since a record is
    # in the outbox before its answer and reaches Redis after. The sidecar is killed before
    # Redis resumes; the next sidecar on the same outbox applies what Redis never saw.
    doc = shared_policy(mock, redis_server.url)
    args = ["--outbox", str(tmp_path / "outbox.jsonl"), "--feature", "checkout"]
    args += ["--namespace", "test"]
    first = sidecars(doc, args=args)
    costs = [ask(first, i) for i in range(4)]
    client = redis_server.client()
    client.client_pause(20_000, all=False)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            costs += pool.map(lambda i: ask(first, i), range(4, 64))
        first.signal(signal.SIGKILL)
        first.wait(10)
    finally:
        client.client_unpause()
    assert ledger_total(redis_server.url, tmp_path) < sum(costs)
    second = sidecars(args=args, config=first.config)  # type: ignore[attr-defined]
    assert_ledger_settles_at(sum(costs), second, redis_server, mock, tmp_path)
