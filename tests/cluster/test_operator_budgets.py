"""FeatureBudgets end to end: a sidecar from the rendered ConfigMap spends, the operator reports
the exact spend from Redis and alerts each threshold once, across restarts."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from switchboard.api import names
from switchboard.devcluster import LocalCluster
from switchboard.pricing.cost import format_usd
from tests.support.kubectl import apply, get, ok, wait_for
from tests.support.mock_provider import MockProvider
from tests.support.operator import OperatorProcess
from tests.support.redis_server import RedisServer, record_spend
from tests.support.sidecar import Sidecar
from tests.support.webhook_receiver import WebhookReceiver

OperatorFactory = Callable[..., OperatorProcess]
TICKS = "switchboard_operator_reconciles_total"


@pytest.fixture
def namespace(switchboard_crds: LocalCluster) -> str:
    name = f"fb-{uuid.uuid4().hex[:8]}"
    ok(switchboard_crds, "create", "namespace", name)
    return name


@pytest.fixture
def operators(switchboard_crds: LocalCluster, namespace: str) -> Iterator[OperatorFactory]:
    started: list[OperatorProcess] = []

    def start() -> OperatorProcess:
        process = OperatorProcess(switchboard_crds.kubeconfig, namespace, args=["--standalone"])
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        print(f"--- operator log ---\n{process.log()[-6000:]}")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def webhook_secret(namespace: str, url: str, name: str = "slack") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }


def feature_budget(namespace: str, limit: float, secret: str = "slack") -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_FEATURE_BUDGET,
        "metadata": {"name": "checkout", "namespace": namespace},
        "spec": {
            "feature": "checkout",
            "team": "payments",
            "limitUSD": limit,
            "period": "monthly",
            "thresholds": [
                {"percent": 80, "action": "alert"},
                {"percent": 100, "action": "block"},
            ],
            "alerts": {"webhookSecretRef": {"name": secret, "key": "url"}, "events": True},
        },
    }


def status_of(kube: LocalCluster, namespace: str) -> dict[str, Any]:
    return dict((get(kube, namespace, "featurebudget", "checkout") or {}).get("status") or {})


def alert_events(kube: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    found = get(kube, namespace, "events", "--field-selector", "reason=BudgetThresholdReached")
    return list((found or {}).get("items") or [])


def ask(client: openai.OpenAI) -> Decimal:
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello"}], max_tokens=10
    )
    return Decimal(raw.headers[names.RESPONSE_COST])


def test_sidecar_spend_reaches_status_and_80_percent_alerts_once_across_restarts(
    switchboard_crds: LocalCluster,
    namespace: str,
    redis_server: RedisServer,
    receiver: WebhookReceiver,
    operators: OperatorFactory,  # after the servers, so that it stops before them
    tmp_path: Path,
) -> None:
    kube = switchboard_crds
    with MockProvider("local") as mock:
        policy = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND_ROUTING_POLICY,
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {
                "providers": [{"name": "local", "baseURL": mock.url}],
                "models": [
                    {
                        "name": "m",
                        "provider": "local",
                        "price": {"inputPerMTok": 0.123, "outputPerMTok": 1000},
                    }
                ],
                "routes": [{"name": "main", "targets": [{"model": "m"}], "retry": {"attempts": 1}}],
                "ledger": {"redisURL": redis_server.url},
            },
        }
        apply(kube, webhook_secret(namespace, receiver.url), policy, feature_budget(namespace, 0.1))
        operator = operators()

        def config() -> str | None:
            found = get(kube, namespace, "configmap", "switchboard-default")
            text = (found or {}).get("data", {}).get(names.CONFIG_MAP_KEY)
            return text if text and "checkout" in text else None

        config_file = tmp_path / "sidecar.yaml"
        config_file.write_text(wait_for("the ConfigMap with the budget", config))
        args = ["--feature", "checkout", "--namespace", namespace]
        with Sidecar(config_file, args=[*args, "--outbox", str(tmp_path / "outbox")]) as sidecar:
            client = openai.OpenAI(base_url=sidecar.url, api_key="unused", max_retries=0)
            costs = [ask(client) for _ in range(8)]  # 8 x $0.010001107 = 80.009 % of $0.1
            spent = format_usd(sum(costs, Decimal(0)))
            assert spent == "0.080008856"
            wait_for("the exact spend", lambda: status_of(kube, namespace).get("spentUSD") == spent)
            status = status_of(kube, namespace)
            assert (status["percentUsed"], status["state"]) == (80.01, "Warning")
            assert status["remainingUSD"] == "0.019991144"
            assert [(m["model"], m["requests"]) for m in status["byModel"]] == [("m", 8)]

            def delivered() -> bool:
                alerts = status_of(kube, namespace).get("alertsSent") or []
                return [(a["percent"], a["event"], a["webhook"]) for a in alerts] == [
                    (80, "Sent", "Sent")
                ]

            wait_for("the 80 % alert delivered", delivered)
            assert len(receiver.posts) == 1
            assert "the 80% threshold is reached: alert" in receiver.posts[0]["text"]
            (event,) = alert_events(kube, namespace)
            assert event["involvedObject"]["name"] == "checkout"
            assert event["type"] == "Warning" and "$0.080008856 of $0.1" in event["message"]

            operator.stop()
            restarted = operators()
            wait_for("three budget reads after the restart", lambda: restarted.metric(TICKS) >= 3)
            assert len(receiver.posts) == 1
            assert len(alert_events(kube, namespace)) == 1

            # The budget reached the sidecar through the rendered config: it blocks at 100 %.
            costs.append(ask(client))
            with pytest.raises(openai.RateLimitError) as refused:
                ask(client)
            assert refused.value.code == "budget_exceeded"
            spent = format_usd(sum(costs, Decimal(0)))
            wait_for("90 % spent", lambda: status_of(kube, namespace).get("spentUSD") == spent)
            ticks = restarted.metric(TICKS)
            wait_for("two more reads", lambda: restarted.metric(TICKS) >= ticks + 2)
            assert len(receiver.posts) == 1 and len(alert_events(kube, namespace)) == 1


def test_webhook_is_retried_until_delivered_then_never_again(
    switchboard_crds: LocalCluster,
    namespace: str,
    redis_server: RedisServer,
    receiver: WebhookReceiver,
    operators: OperatorFactory,  # after the servers, so that it stops before them
    tmp_path: Path,
) -> None:
    kube = switchboard_crds
    policy = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_ROUTING_POLICY,
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "providers": [{"name": "local", "baseURL": "http://127.0.0.1:9/v1"}],
            "models": [{"name": "m", "provider": "local", "price": {"inputPerMTok": 1}}],
            "routes": [{"name": "main", "targets": [{"model": "m"}]}],
            "ledger": {"redisURL": redis_server.url},
        },
    }
    apply(kube, policy, feature_budget(namespace, 10, secret="hooks"))
    record_spend(redis_server.url, namespace, "8.5", tmp_path)
    operator = operators()

    def alert() -> dict[str, Any] | None:
        alerts = status_of(kube, namespace).get("alertsSent") or []
        return alerts[0] if alerts and alerts[0].get("attempts", 0) >= 2 else None

    first = wait_for("webhook attempts without a Secret", alert)
    assert (first["event"], first["webhook"]) == ("Sent", "Pending")
    assert first["message"] == "Secret hooks has no key url"
    assert receiver.posts == []

    receiver.status = 503
    apply(kube, webhook_secret(namespace, receiver.url, name="hooks"))
    wait_for("a refused POST", lambda: receiver.posts)
    receiver.status = 200
    wait_for("delivered", lambda: (alert() or {}).get("webhook") == "Sent")
    posts = len(receiver.posts)
    assert posts >= 2 and all("85%" in p["text"] for p in receiver.posts)
    ticks = operator.metric(TICKS)
    wait_for("two more reads", lambda: operator.metric(TICKS) >= ticks + 2)
    assert len(receiver.posts) == posts
    assert len(alert_events(kube, namespace)) == 1
    assert operator.metric("switchboard_operator_alerts_sent_total", channel="webhook") == 1
