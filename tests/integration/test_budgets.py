"""Budgets enforced by a sidecar, in process with a clock the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer

from switchboard.pricing.catalog import catalog_price
from switchboard.sidecar.app import SidecarSettings, create_app
from switchboard.sidecar.pipeline import Clock
from switchboard.sidecar.reload import ConfigSource
from tests.support.mock_provider import MockProvider
from tests.support.sidecar import policy, write_manifests

# $1 per output token, nothing for input: a request with max_tokens=N costs exactly $N.
DOLLAR_PER_TOKEN = {"inputPerMTok": 0, "outputPerMTok": 1_000_000}
HALF_DOLLAR_PER_TOKEN = {"inputPerMTok": 0, "outputPerMTok": 500_000}


class FakeClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.wall = now

    def now(self) -> datetime:
        return self.wall


def budget(limit: int, thresholds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": {"name": "assistant-weekly", "namespace": "test"},
        "spec": {
            "feature": "assistant",
            "team": "growth",
            "limitUSD": limit,
            "period": "weekly",
            "thresholds": thresholds,
        },
    }


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProvider]:
    with MockProvider("llm") as provider:
        yield provider


Start = Callable[..., Any]


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Start]:
    servers: list[TestServer] = []

    async def start(clock: FakeClock, *docs: dict[str, Any]) -> openai.AsyncOpenAI:
        path = write_manifests(tmp_path / "policy.yaml", *docs)
        settings = SidecarSettings(config_path=path, feature="assistant", namespace="test")
        source = ConfigSource(path, {}, catalog_price)
        server = TestServer(create_app(settings, config_source=source, clock=clock))
        await server.start_server()
        servers.append(server)
        return openai.AsyncOpenAI(
            base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0
        )

    yield start
    for server in servers:
        await server.close()


def two_model_policy(mock: MockProvider, **route: Any) -> dict[str, Any]:
    return policy(
        [{"name": "llm", "baseURL": mock.url}],
        [
            {"name": "flagship", "provider": "llm", "price": DOLLAR_PER_TOKEN},
            {"name": "cheap", "provider": "llm", "price": HALF_DOLLAR_PER_TOKEN},
        ],
        [{"name": "main", "targets": [{"model": "flagship"}], **route}],
    )


async def ask(client: openai.AsyncOpenAI) -> tuple[str, str | None, Decimal]:
    """(model, budget header, cost) of one request costing $10 on the flagship."""
    raw = await client.chat.completions.with_raw_response.create(
        model="any", messages=[{"role": "user", "content": "hi"}], max_tokens=10
    )
    headers = raw.headers
    return (
        headers["x-switchboard-model"],
        headers.get("x-switchboard-budget"),
        Decimal(headers["x-switchboard-cost-usd"]),
    )


async def test_thresholds_switch_alert_downgrade_block_then_a_new_week_starts_clean(
    mock: MockProvider, sidecar: Start
) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC))  # a Wednesday
    thresholds = [
        {"percent": 80, "action": "alert"},
        {"percent": 100, "action": "downgrade", "downgradeTo": "cheap"},
        {"percent": 120, "action": "block"},
    ]
    client = await sidecar(clock, two_model_policy(mock), budget(100, thresholds))
    seen = [await ask(client) for _ in range(13)]
    assert [s[1] for s in seen] == [None] * 7 + ["warning"] * 2 + ["downgraded"] * 4
    assert [s[0] for s in seen] == ["flagship"] * 9 + ["cheap"] * 4
    assert sum(s[2] for s in seen) == Decimal(110)

    with pytest.raises(openai.RateLimitError) as blocked:
        await ask(client)
    error = blocked.value.body
    assert isinstance(error, dict)
    assert error["type"] == "budget_exceeded"
    assert (error["feature"], error["budget"], error["limitUSD"]) == (
        "assistant",
        "assistant-weekly",
        "100",
    )
    assert error["periodEnd"] == "2026-11-30T00:00:00+00:00"
    retry_after = int(blocked.value.response.headers["retry-after"])
    assert retry_after == int(timedelta(days=4, hours=12).total_seconds())

    clock.wall = datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC)  # Monday: a new ISO week
    model, header, cost = await ask(client)
    assert (model, header, cost) == ("flagship", None, Decimal(10))


async def test_a_paid_fallback_cannot_bypass_the_budget(mock: MockProvider, sidecar: Start) -> None:
    mock.reset()
    mock.set_faults({"fault": "500", "model": "free"})
    doc = policy(
        [{"name": "llm", "baseURL": mock.url}],
        [
            {"name": "free", "provider": "llm", "price": {"inputPerMTok": 0}},
            {"name": "paid", "provider": "llm", "price": DOLLAR_PER_TOKEN},
        ],
        [
            {
                "name": "main",
                "targets": [{"model": "free"}],
                "fallback": [{"model": "paid"}],
                "retry": {"attempts": 1},
            }
        ],
    )
    clock = FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    client = await sidecar(clock, doc, budget(25, [{"percent": 100, "action": "block"}]))
    assert (await ask(client))[0] == "paid"
    assert (await ask(client))[0] == "paid"
    with pytest.raises(openai.RateLimitError):
        await ask(client)
    billed = mock.stats()["by_model"]
    assert billed["paid"]["output_tokens"] == 20  # two paid answers, nothing more
    mock.reset()


async def test_cache_hits_are_free_and_allowed_past_the_block(
    mock: MockProvider, sidecar: Start
) -> None:
    mock.reset()
    clock = FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    doc = two_model_policy(mock, cache={"mode": "exact"})
    client = await sidecar(clock, doc, budget(15, [{"percent": 100, "action": "block"}]))
    first = await ask(client)
    assert first[2] == Decimal(10)
    again = await ask(client)
    assert again[2] == Decimal(0)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "new"}], max_tokens=10
        )
