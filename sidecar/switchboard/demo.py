"""Edge: `switchboard demo` — a real local run of routing, failover, caching and cost per feature.

Starts the project's mock providers (one of them failing) and a sidecar on loopback, sends a
mixed workload through the official `openai` SDK, then reads the sidecar's own /metrics and
prints what each feature spent, against what the same traffic would have cost on the flagship.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from switchboard.budget.state import budget_state
from switchboard.config.load import load_config
from switchboard.config.runtime import RuntimeConfig, compile_runtime
from switchboard.pricing.catalog import catalog_price
from switchboard.pricing.cost import UnitPrice, Usage, cost_of

FLAGSHIP = "gpt-4o"
FAILING_PROVIDER = "groq"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(argv: Sequence[str], ready: str, env: Mapping[str, str]) -> Iterator[str]:
    """Run a child until the block ends; yields its ready line."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env={**env}
        )
        try:
            yield _ready_line(proc, ready, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready_line(proc: subprocess.Popen[bytes], ready: str, log: Any) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline().decode().strip()
            if ready in line:
                return line
            if not line and proc.poll() is not None:
                break
    log.seek(0)
    raise RuntimeError(f"{proc.args!r} did not start: {log.read().decode()[-2000:]}")


def _targets(base: str) -> list[str]:
    with urllib.request.urlopen(base + "/debug/targets", timeout=5) as response:
        targets = yaml.safe_load(response.read())["targets"]
    return [
        f"  {t['model']} ({t['provider']}): circuit {t['state']} after "
        f"{t['consecutiveFailures']} failures in a row"
        for t in targets
        if t["state"] != "closed"
    ]


def _admin(base: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(base + path, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _local_policy(source: Path, ports: Mapping[str, int], target: Path) -> None:
    """The demo manifests with every provider pointed at its local mock."""
    files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    for doc in docs:
        if doc and doc.get("kind") == "RoutingPolicy":
            for provider in doc["spec"]["providers"]:
                provider["baseURL"] = f"http://127.0.0.1:{ports[provider['name']]}/v1"
    target.write_text(yaml.safe_dump_all(docs, sort_keys=False))


WORKLOAD: Sequence[tuple[str, dict[str, str], str, bool]] = (
    # feature, extra headers, prompt, stream
    ("support-bot", {}, "How do I reset my password?", False),
    ("support-bot", {}, "Where is my order #1234?", True),
    ("support-bot", {}, "How do I reset my password?", False),
    (
        "invoice-extractor",
        {"X-Switchboard-Task": "extraction"},
        "Extract vendor and total as JSON [[json]] from: ACME Corp, total $1,234.50",
        False,
    ),
    (
        "ticket-triage",
        {"X-Switchboard-Task": "classification"},
        "Classify this ticket as billing, bug or other: 'I was charged twice'",
        False,
    ),
    ("onboarding-assistant", {}, "Write a friendly welcome for a new user named Ada.", True),
    ("onboarding-assistant", {}, "Suggest three first steps in our analytics product.", False),
    ("eu-chat", {"X-Switchboard-Region": "eu"}, "Summarise our GDPR data policy.", False),
)


def _send(base_url: str, count: int, rng: random.Random) -> tuple[int, int, int]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    ok = blocked = failed = 0
    for i in range(count):
        feature, headers, prompt, stream = WORKLOAD[i % len(WORKLOAD)]
        if feature != "support-bot" and rng.random() < 0.5:
            prompt = f"{prompt} (variant {rng.randrange(1000)})"
        extra = {"X-Switchboard-Feature": feature, **headers}
        max_tokens = rng.choice((64, 128, 256))
        try:
            if stream:
                chunks = client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                    stream=True,
                    extra_headers=extra,
                )
                for _ in chunks:
                    pass
            else:
                client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                    extra_headers=extra,
                )
            ok += 1
        except openai.RateLimitError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            if body.get("type") != "budget_exceeded":
                raise
            blocked += 1
        except openai.APIError as exc:
            failed += 1
            print(f"  request {i} ({feature}) failed: {exc}", file=sys.stderr)
    client.embeddings.create(model="text-embedding-3-small", input=["switchboard demo"])
    return ok, blocked, failed


def _metrics(base: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def report(metrics: Mapping[str, list[tuple[dict[str, str], float]]], flagship: UnitPrice) -> str:
    """The table: per feature and model, what was used and spent."""
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    for labels, value in metrics.get("switchboard_requests_total", []):
        if labels["model"]:
            rows[(labels["feature"], labels["model"])]["requests"] += value
    for labels, value in metrics.get("switchboard_tokens_total", []):
        rows[(labels["feature"], labels["model"])][labels["type"]] += value
    for labels, value in metrics.get("switchboard_cost_usd_total", []):
        rows[(labels["feature"], labels["model"])]["cost"] += value
    for labels, value in metrics.get("switchboard_failovers_total", []):
        rows[(labels["feature"], labels["model"])]["failovers"] += value
    hits: dict[str, float] = defaultdict(float)
    for labels, value in metrics.get("switchboard_cache_hits_total", []):
        hits[labels["feature"]] += value
    head = (
        f"{'feature':<22}{'model':<24}{'requests':>9}{'in tok':>9}{'out tok':>9}"
        f"{'cost USD':>12}{'failovers':>10}{'cache hits':>11}{'on flagship':>13}"
    )
    lines = [head, "-" * len(head)]
    total = flag_total = Decimal(0)
    seen_features: set[str] = set()
    for (feature, model), row in sorted(rows.items()):
        usage = Usage(int(row["input"]), int(row["output"]))
        cost = Decimal(str(row["cost"])).quantize(Decimal("0.000001"))
        on_flagship = cost_of(usage, flagship).quantize(Decimal("0.000001"))
        total += cost
        flag_total += on_flagship
        hit = "" if feature in seen_features else f"{int(hits.get(feature, 0))}"
        seen_features.add(feature)
        lines.append(
            f"{feature:<22}{model:<24}{int(row['requests']):>9}{usage.input_tokens:>9}"
            f"{usage.output_tokens:>9}{cost:>12}{int(row['failovers']):>10}{hit:>11}"
            f"{on_flagship:>13}"
        )
    lines.append("-" * len(head))
    saved = flag_total - total
    share = (saved / flag_total * 100).quantize(Decimal("0.1")) if flag_total else Decimal(0)
    lines.append(
        f"total spent ${total}; the same traffic on {FLAGSHIP} alone: ${flag_total} "
        f"(routing saved ${saved}, {share}%)"
    )
    return "\n".join(lines)


def budget_report(
    metrics: Mapping[str, list[tuple[dict[str, str], float]]], runtime: RuntimeConfig
) -> str:
    """Each budget: spent against its limit, and the state that spend puts it in."""
    spent = {
        labels["budget"]: Decimal(str(value))
        for labels, value in metrics.get("switchboard_budget_spent_usd", [])
    }
    lines = [f"{'budget':<22}{'period':<9}{'spent USD':>12}{'limit USD':>11}{'used':>8}  state"]
    for config in runtime.config.budgets:
        spec = config.spec
        used = spent.get(config.name, Decimal(0))
        share = (used / spec.limit_usd * 100).quantize(Decimal("0.1"))
        lines.append(
            f"{config.name:<22}{spec.period:<9}{used.quantize(Decimal('0.000001')):>12}"
            f"{spec.limit_usd:>11}{share:>7}%  {budget_state(used, spec)}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    source = Path(os.environ.get("SWITCHBOARD_DEMO_POLICY", "examples/demo"))
    runtime = compile_runtime(load_config(source), env={}, price_lookup=catalog_price)
    providers = list(runtime.providers)
    ports = {name: _free_port() for name in providers}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    keys = {
        "DEMO_OPENAI_KEY": "demo-openai",
        "DEMO_DEEPSEEK_KEY": "demo-deepseek",
        "DEMO_MISTRAL_KEY": "demo-mistral",
    }
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        print(f"starting {len(providers)} mock providers and the sidecar on 127.0.0.1 ...")
        for name in providers:
            stack.enter_context(
                _process(
                    [
                        sys.executable,
                        "-m",
                        "switchboard.mockprovider",
                        "--port",
                        str(ports[name]),
                        "--name",
                        name,
                    ],
                    "listening",
                    env,
                )
            )
        _admin(
            f"http://127.0.0.1:{ports[FAILING_PROVIDER]}",
            "/_mock/faults",
            b'{"rules": [{"fault": "503"}]}',
        )
        print(f"  provider {FAILING_PROVIDER!r} is down (answers 503): watch the failovers")
        policy = Path(tmp) / "policy.yaml"
        _local_policy(source, ports, policy)
        line = stack.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "switchboard.cli",
                    "sidecar",
                    "--config",
                    str(policy),
                    "--port",
                    "0",
                    "--namespace",
                    "shop",
                ],
                "listening on",
                {**env, **keys},
            )
        )
        match = re.search(r"http://[\d.]+:\d+", line)
        assert match is not None
        base = match.group(0)
        print(f"  {line}")
        print(f"sending {args.requests} requests through the official openai SDK ...")
        ok, blocked, failed = _send(base + "/v1", args.requests, random.Random(7))
        print(f"  {ok} served, {blocked} refused by a budget, {failed} failed")
        if blocked:
            print(
                "  (a request is refused once spend plus its worst-case cost would reach the\n"
                "   block threshold, so the limit is never passed)"
            )
        print()
        print(report(_metrics(base), runtime.models[FLAGSHIP].price))
        print(
            "\n".join(
                [
                    "",
                    "targets skipped by the circuit breaker (GET /debug/targets):",
                    *_targets(base),
                ]
            )
        )
        print("\nbudgets (FeatureBudget, enforced by the sidecar):")
        print(budget_report(_metrics(base), runtime))
    return 0 if failed == 0 else 1
