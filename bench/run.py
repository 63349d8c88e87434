"""Benchmark: the Switchboard sidecar against direct calls and against the LiteLLM proxy.

`make bench` (or `.venv/bin/python bench/run.py`). Everything listens on 127.0.0.1. The proxy
under test runs pinned to core 0; the load generator (vegeta), the mock provider, Redis, the
OTLP sink and this script run on core 1. Each phase alternates over the targets round by
round: direct to the mock, the sidecar in each configuration, LiteLLM. The markdown table goes
to `bench/results/<date>.md` and to stdout. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import yaml

from bench import hotspots
from bench.figures import (
    Row,
    Target,
    gaps,
    number,
    paced,
    percentile,
    rounds_percentile,
    table,
)
from bench.litellm_proxy import (
    MASTER_KEY,
    ensure_litellm,
    litellm_version,
    start_litellm,
)
from bench.loadgen import Request, Run, Vegeta, ensure_vegeta
from bench.procs import (
    LOAD_CORE,
    PRIORITY,
    PROXY_CORE,
    Child,
    after_sleep_us,
    busy_seconds,
    cpu_seconds,
    free_port,
    machine,
    peak_rss_mb,
    pinned,
    raise_own_priority,
    rss_mb,
    wake_round_trip_us,
)
from bench.sse_client import Received, StreamClient, StreamTiming

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MOCK_KEY = "sk-mock-bench"
MODEL = "gpt-4o-mini"  # the model every plain request asks for
PACED_MODEL = "gpt-4.1-mini"  # streams of this model come with a 1 ms gap between chunks
PRIMARY = "gpt-4o"  # the failover route's primary, made to fail at once
PROMPT = [{"role": "user", "content": "Summarise the benchmark in one short sentence."}]
CHUNK_GAP_MS = 1.0

READY_MOCK = re.compile(r"mock-provider \S+ listening on http://127\.0\.0\.1:(\d+)")
READY_SIDECAR = re.compile(r"switchboard sidecar listening on http://127\.0\.0\.1:(\d+)")
READY_SINK = re.compile(r"otlp-sink listening on http://127\.0\.0\.1:(\d+)")
READY_RELAY = re.compile(r"relay listening on http://127\.0\.0\.1:(\d+)")
RELAY = "relay"
"""The byte relay's endpoint key: the machine's floor for a proxy (`bench/relay.py`)."""


@dataclass(frozen=True)
class Plan:
    """How long each phase runs; `--quick` shrinks it to check the harness."""

    rounds: int = 3
    c1_seconds: float = 3.0
    sat_seconds: float = 5.0
    sat_workers: int = 32
    rates: tuple[int, ...] = (100, 200, 1000)
    rate_seconds: float = 4.0
    stream_seconds: float = 2.5
    paced_streams: int = 25
    failover_requests: int = 150

    @staticmethod
    def quick() -> Plan:
        return Plan(1, 1.0, 1.5, 32, (100, 1000), 1.5, 0.5, 3, 30)


# ---- targets ----------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """Where a run sends its requests: the mock itself, a sidecar or LiteLLM."""

    key: str
    label: str
    base: str  # ends in /v1
    headers: dict[str, str]
    child: Child | None = None
    idle_rss: float = math.nan
    peak_rss: float = math.nan

    def chat(self, model: str, *, stream: bool = False, max_tokens: int = 16) -> Request:
        body: dict[str, object] = {"model": model, "messages": PROMPT, "max_tokens": max_tokens}
        if stream:
            body["stream"] = True
        return Request(self.base + "/chat/completions", orjson.dumps(body), self.headers)


SIDECAR_CONFIGS = {
    "mem": "memory ledger · spans no-op",
    "redis": "Redis ledger · OTLP spans (batch) to local sink",
    "mem-otlp": "memory ledger · OTLP spans (batch) to local sink",
    "redis-noop": "Redis ledger · spans no-op",
}
"""Each sidecar configuration: (ledger, spans). The first two run every phase; the other two
split the cost of the second between its ledger and its spans (latency and throughput only)."""
MAIN_CONFIGS = ("mem", "redis")
SIDECAR_SETUP: dict[str, tuple[bool, bool]] = {
    "mem": (False, False),
    "redis": (True, True),
    "mem-otlp": (False, True),
    "redis-noop": (True, False),
}
"""Per configuration: (Redis ledger, OTLP spans)."""


def policy(mock: str, redis_url: str | None) -> list[dict[str, object]]:
    """The sidecar's RoutingPolicy (and a FeatureBudget, so budgets are checked every request):
    `gpt-4o-mini` by default, a paced stream model, and a failover route."""
    key = {"env": "BENCH_MOCK_KEY"}
    spec: dict[str, object] = {
        "providers": [
            {"name": "mock", "baseURL": mock, "apiKey": key, "region": "us"},
            {"name": "mock-primary", "baseURL": mock, "apiKey": key, "region": "us"},
        ],
        "models": [
            {"name": MODEL, "provider": "mock"},
            {"name": PACED_MODEL, "provider": "mock"},
            {"name": PRIMARY, "provider": "mock-primary"},
        ],
        "routes": [
            {
                "name": "failover",
                "match": {"requestedModels": ["bench-failover"]},
                "targets": [{"model": PRIMARY}],
                "fallback": [{"model": MODEL}],
                "retry": {"attempts": 1},
            },
            {
                "name": "paced",
                "match": {"requestedModels": [PACED_MODEL]},
                "targets": [{"model": PACED_MODEL}],
            },
            {"name": "default", "targets": [{"model": MODEL}]},
        ],
        # The failover phase fails the primary a few hundred times in a row: keep its breaker
        # closed so that every request really tries it first.
        "circuitBreaker": {"failureThreshold": 1000, "cooldownSeconds": 30},
    }
    if redis_url:
        spec["ledger"] = {"redisURL": redis_url}
    meta = {"name": "bench", "namespace": "bench"}
    budget = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "FeatureBudget",
        "metadata": meta,
        "spec": {
            "feature": "bench",
            "team": "perf",
            "limitUSD": 1000000,
            "period": "monthly",
            "thresholds": [{"percent": 80, "action": "alert"}, {"percent": 120, "action": "block"}],
        },
    }
    routing = {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": meta,
        "spec": spec,
    }
    return [routing, budget]


# ---- infrastructure ---------------------------------------------------------------------------


@contextmanager
def running(child: Child, ready: re.Pattern[str] | None = None) -> Iterator[str]:
    line = child.start(ready)
    try:
        yield line
    finally:
        child.stop()


def port_of(line: str, pattern: re.Pattern[str]) -> int:
    match = pattern.search(line)
    assert match is not None, line
    return int(match.group(1))


def http_json(url: str, body: object | None = None) -> object:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def start_redis(stack: ExitStack, workdir: Path) -> tuple[str, Child]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/install-deps installs it)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(workdir), "--daemonize", "no"]
    child = Child("redis", pinned(argv, LOAD_CORE))
    child.start()
    stack.callback(child.stop)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        )
        if probe.stdout.strip() == "PONG":
            return f"redis://127.0.0.1:{port}/0", child
        time.sleep(0.1)
    raise RuntimeError(f"redis-server did not start:\n{child.log_tail()}")


def start_sidecar(
    stack: ExitStack, workdir: Path, key: str, mock: str, redis_url: str | None, sink: str | None
) -> Endpoint:
    config = workdir / f"policy-{key}.yaml"
    config.write_text(yaml.safe_dump_all(policy(mock, redis_url), sort_keys=False))
    argv = [str(Path(PYTHON).parent / "switchboard"), "sidecar", "--config", str(config)]
    argv += ["--port", "0", "--feature", "bench", "--team", "perf", "--namespace", "bench"]
    argv += ["--outbox", str(workdir / f"outbox-{key}.jsonl")]
    env = {"BENCH_MOCK_KEY": MOCK_KEY, "OTEL_TRACES_EXPORTER": "none"}
    if sink:
        env |= {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink}
        env["OTEL_SERVICE_NAME"] = "switchboard-bench"
    child = Child(f"sidecar-{key}", pinned(argv, PROXY_CORE), env=env)
    line = stack.enter_context(running(child, READY_SIDECAR))
    base = f"http://127.0.0.1:{port_of(line, READY_SIDECAR)}/v1"
    return Endpoint(key, f"sidecar ({SIDECAR_CONFIGS[key]})", base, {}, child)


# ---- measurements -----------------------------------------------------------------------------

Rounds = list[list[float]]
"""Samples of one figure, one list per round."""


@dataclass
class Samples:
    """Everything measured for one target, round by round."""

    c1: Rounds = field(default_factory=list)
    sat_rate: list[float] = field(default_factory=list)
    sat_generator: list[float] = field(default_factory=list)
    sat_busy: list[dict[int, float]] = field(default_factory=list)
    sat_proxy_cpu: list[float] = field(default_factory=list)
    open: dict[int, Rounds] = field(default_factory=dict)
    open_lag: dict[int, list[float]] = field(default_factory=dict)
    open_rate: dict[int, list[float]] = field(default_factory=dict)
    open_generator: dict[int, list[float]] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    ttft: Rounds = field(default_factory=list)
    total: Rounds = field(default_factory=list)
    paced_ttft: Rounds = field(default_factory=list)
    paced_gaps: Rounds = field(default_factory=list)
    paced_total: Rounds = field(default_factory=list)
    failover: dict[str, Rounds] = field(default_factory=dict)
    failover_primary_hits: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def latencies(run: Run, samples: Samples) -> list[float]:
    samples.errors += len(run.hits) - len(run.ok)
    return [h.latency for h in run.ok]


def streams(endpoint: Endpoint, body: bytes, *, seconds: float, limit: int) -> list[StreamTiming]:
    """Streams one after another (concurrency 1) for `seconds` or `limit` streams, timed once
    they are all done."""
    client = StreamClient(endpoint.base + "/chat/completions", endpoint.headers)
    received: list[Received] = []
    deadline = time.perf_counter() + seconds
    try:
        while len(received) < limit and (time.perf_counter() < deadline or len(received) < 5):
            received.append(client.stream(body))
    finally:
        client.close()
    return [r.timing() for r in received]


def stream_body(model: str, tokens: int) -> bytes:
    return orjson.dumps({"model": model, "messages": PROMPT, "max_tokens": tokens, "stream": True})


OPEN_LOOP_WARMUP = 0.5
"""Seconds at the start of an open-loop run left out: vegeta opens its connections then."""


DISTURBED = 25.0
"""Percent of a core used by other processes during a step above which the step is measured
again (at most `REMEASURE` times; the last measurement is kept)."""
REMEASURE = 2


class Bench:
    def __init__(
        self,
        plan: Plan,
        vegeta: Vegeta,
        mock: str,
        endpoints: list[Endpoint],
        children: Sequence[Child],
    ) -> None:
        self.plan = plan
        self.vegeta = vegeta
        self.mock = mock  # base URL of the mock (no /v1)
        self.endpoints = endpoints
        self.children = list(children)
        self.samples = {e.key: Samples() for e in endpoints}
        self.remeasured = 0
        self.wake_us = (math.nan, math.nan, math.nan)
        """Round trips (µs) between the cores before and after the run, and on one core."""
        self.after_sleep_us = (math.nan, math.nan)
        """The same Python work on the proxy core (µs): back to back, and right after a wait."""

    def alternate(
        self,
        name: str,
        rounds: int,
        targets: Sequence[Endpoint],
        step: Callable[[Endpoint], None],
    ) -> None:
        """Each round measures every target in turn. While one proxy is measured the others are
        paused (SIGSTOP), so that their background work (span export, budget refresh,
        LiteLLM's jobs) is not counted against it on the shared proxy core. A step during
        which other processes on the machine used more than `DISTURBED` % of a core is
        measured again."""
        proxies = [e.child for e in self.endpoints if e.child is not None]
        pids = [c.pid for c in self.children]
        try:
            for index in range(rounds):
                for endpoint in targets:
                    print(f"  {name} round {index + 1}/{rounds}: {endpoint.key}", flush=True)
                    for child in proxies:
                        child.signal(signal.SIGCONT if child is endpoint.child else signal.SIGSTOP)
                    for attempt in range(REMEASURE + 1):
                        kept = copy.deepcopy(self.samples[endpoint.key])
                        began, busy, ours = time.perf_counter(), busy_seconds(), own_cpu(pids)
                        step(endpoint)
                        other = busy_seconds() - busy - (own_cpu(pids) - ours)
                        other = 100 * other / (time.perf_counter() - began)
                        if other <= DISTURBED or attempt == REMEASURE:
                            break
                        print(f"    other work took {other:.0f} % of a core: again", flush=True)
                        self.samples[endpoint.key] = kept
                        self.remeasured += 1
        finally:
            for child in proxies:
                child.signal(signal.SIGCONT)

    def faults(self, rules: list[dict[str, object]]) -> None:
        paced_rule = {"fault": "slow", "model": PACED_MODEL, "delay_ms": CHUNK_GAP_MS}
        http_json(self.mock + "/_mock/faults", {"rules": [paced_rule, *rules]})

    def warm_up(self) -> None:
        for endpoint in self.endpoints:
            self.vegeta.attack(endpoint.chat(MODEL), workers=4, duration=1.5)
            streams(endpoint, stream_body(MODEL, 100), seconds=0.3, limit=20)

    def concurrency_one(self, endpoint: Endpoint) -> None:
        run = self.vegeta.attack(endpoint.chat(MODEL), workers=1, duration=self.plan.c1_seconds)
        self.samples[endpoint.key].c1.append(latencies(run, self.samples[endpoint.key]))

    def saturated(self, endpoint: Endpoint) -> None:
        s = self.samples[endpoint.key]
        proxy_cpu = cpu_seconds(endpoint.child.pid) if endpoint.child else 0.0
        run = self.vegeta.attack(
            endpoint.chat(MODEL), workers=self.plan.sat_workers, duration=self.plan.sat_seconds
        )
        latencies(run, s)
        if endpoint.child:
            s.sat_proxy_cpu.append(100 * (cpu_seconds(endpoint.child.pid) - proxy_cpu) / run.wall)
        s.sat_rate.append(len(run.ok) / run.wall)
        s.sat_generator.append(run.generator_percent)
        s.sat_busy.append(run.busy)

    def open_loop(self, rate: int) -> Callable[[Endpoint], None]:
        def step(endpoint: Endpoint) -> None:
            s = self.samples[endpoint.key]
            capacity = max(s.sat_rate, default=math.inf)
            if rate > 0.8 * capacity:
                s.skipped[rate] = f"not run: over 80 % of its saturated {capacity:,.0f} req/s"
                return
            run = self.vegeta.attack(
                endpoint.chat(MODEL),
                rate=rate,
                workers=16,
                duration=self.plan.rate_seconds + OPEN_LOOP_WARMUP,
            )
            result = paced(run.hits, rate, warmup=OPEN_LOOP_WARMUP)
            s.errors += result.errors
            s.open.setdefault(rate, []).append(result.latencies)
            s.open_lag.setdefault(rate, []).append(result.p99_lag)
            s.open_rate.setdefault(rate, []).append(result.achieved_rate)
            s.open_generator.setdefault(rate, []).append(run.generator_percent)

        return step

    def streaming(self, endpoint: Endpoint) -> None:
        s = self.samples[endpoint.key]
        body = stream_body(MODEL, 100)
        timings = streams(endpoint, body, seconds=self.plan.stream_seconds, limit=2000)
        s.ttft.append([t.ttft for t in timings])
        s.total.append([t.total for t in timings])

    def paced_streaming(self, endpoint: Endpoint) -> None:
        s = self.samples[endpoint.key]
        body = stream_body(PACED_MODEL, 100)
        timings = streams(endpoint, body, seconds=60, limit=self.plan.paced_streams)
        s.paced_ttft.append([t.ttft for t in timings])
        s.paced_gaps.append([g for t in timings for g in gaps(t.arrivals)])
        s.paced_total.append([t.total for t in timings])

    def failover(self, kind: str) -> Callable[[Endpoint], None]:
        def step(endpoint: Endpoint) -> None:
            s = self.samples[endpoint.key]
            # Direct (and through the relay): a call straight to the fallback. Proxies: the
            # failover route.
            model = MODEL if endpoint.key in ("direct", RELAY) else "bench-failover"
            before = self.primary_requests()
            run = self.vegeta.attack(
                endpoint.chat(model), workers=1, count=self.plan.failover_requests
            )
            s.failover.setdefault(kind, []).append(latencies(run, s))
            tried = self.primary_requests() - before
            s.failover_primary_hits[kind] = s.failover_primary_hits.get(kind, 0) + tried

        return step

    def primary_requests(self) -> int:
        stats = http_json(self.mock + "/_mock/stats")
        assert isinstance(stats, dict)
        by_model = stats.get("by_model", {})
        return int(by_model.get(PRIMARY, {}).get("requests", 0))

    def run(self) -> None:
        plan, everyone = self.plan, self.endpoints
        main = [e for e in everyone if e.key not in SIDECAR_CONFIGS or e.key in MAIN_CONFIGS]

        alternate = self.alternate

        self.faults([])
        print("warm-up", flush=True)
        self.warm_up()
        print("closed loop, concurrency 1", flush=True)
        alternate("c=1", plan.rounds, everyone, self.concurrency_one)
        print(f"saturated, closed loop with {plan.sat_workers} connections", flush=True)
        alternate("saturated", max(2, plan.rounds - 1), everyone, self.saturated)
        for rate in plan.rates:
            print(f"open loop at {rate} req/s", flush=True)
            alternate(f"{rate}/s", plan.rounds, everyone, self.open_loop(rate))
        print("streams of 100 chunks (no delay at the mock)", flush=True)
        alternate("stream", max(1, plan.rounds - 1), main, self.streaming)
        print(f"streams of 100 chunks {CHUNK_GAP_MS:g} ms apart", flush=True)
        alternate("paced", max(1, plan.rounds - 1), main, self.paced_streaming)
        for kind in ("500", "429"):
            print(f"failover: the primary answers {kind} at once", flush=True)
            rule: dict[str, object] = {"fault": kind, "model": PRIMARY}
            if kind == "429":
                rule["retry_after"] = 0  # a rest of 0 s: every request tries the primary again
            self.faults([rule])
            alternate(f"failover {kind}", max(1, plan.rounds - 1), main, self.failover(kind))
        self.faults([])
        for endpoint in everyone:
            if endpoint.child is not None:
                endpoint.peak_rss = peak_rss_mb(endpoint.child.pid)

    def profile(self, out: Path, stem: str, workdir: Path) -> list[Path]:
        """py-spy on each sidecar during one more saturated run; a summary file per sidecar in
        `out` (the raw collapsed stacks stay in `workdir`, which is temporary)."""
        py_spy = Path(PYTHON).parent / "py-spy"
        if not py_spy.exists():
            print(
                "--profile needs py-spy: make bench installs it (the bench extra)", file=sys.stderr
            )
            return []
        written = []
        for endpoint in self.endpoints:
            if endpoint.child is None or endpoint.key in ("litellm", RELAY):
                continue
            raw = workdir / f"{stem}-profile-{endpoint.key}.collapsed"
            seconds = self.plan.sat_seconds
            argv = [str(py_spy), "record", "--pid", str(endpoint.child.pid), "--rate", "250"]
            argv += ["--format", "raw", "--duration", f"{seconds + 1:.0f}", "-o", str(raw)]
            spy = subprocess.Popen(
                pinned(argv, LOAD_CORE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(0.5)
            self.vegeta.attack(
                endpoint.chat(MODEL), workers=self.plan.sat_workers, duration=seconds
            )
            spy.wait(timeout=30)
            summary = hotspots.report(hotspots.summarise(raw.read_text().splitlines()), 40)
            text = out / f"{stem}-profile-{endpoint.key}.txt"
            text.write_text(f"{endpoint.label}, saturated\n" + "\n".join(summary) + "\n")
            written.append(text)
        return written


# ---- the report -------------------------------------------------------------------------------

MS = 1000.0


def p(rounds: Rounds, q: float) -> float:
    """A latency figure in ms: the median over rounds of the rounds' q-th percentile."""
    return rounds_percentile(rounds, q) * MS


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def rows(bench: Bench) -> list[Row]:
    s = bench.samples
    direct, litellm = s["direct"], s["litellm"]
    sidecars = [e for e in bench.endpoints if e.key in SIDECAR_CONFIGS]
    litellm_endpoint = next(x for x in bench.endpoints if x.key == "litellm")
    out: list[Row] = []

    def add(
        figure: str,
        unit: str,
        get: Callable[[Samples], float],
        target: Target | None = None,
        *,
        added: bool = False,
        note_of: Callable[[Samples], str] | None = None,
        every_config: bool = False,
    ) -> None:
        base = get(direct)
        for endpoint in sidecars:
            if not every_config and endpoint.key not in MAIN_CONFIGS:
                continue
            value, other = get(s[endpoint.key]), get(litellm)
            if added:
                value, other = value - base, other - base
            note = note_of(litellm) if note_of else ""
            out.append(
                Row(
                    figure,
                    unit,
                    endpoint.key,
                    math.nan if added else base,
                    value,
                    other,
                    target,
                    note,
                )
            )

    add("c=1 latency p50", "ms", lambda x: p(x.c1, 50))
    add("c=1 latency p99", "ms", lambda x: p(x.c1, 99))
    add(
        "c=1 added latency p50",
        "ms",
        lambda x: p(x.c1, 50),
        Target(0.5),
        added=True,
        every_config=True,
    )
    add(
        "c=1 added latency p99",
        "ms",
        lambda x: p(x.c1, 99),
        Target(1.5),
        added=True,
        every_config=True,
    )
    add(
        "saturated throughput",
        "req/s",
        lambda x: max(x.sat_rate, default=math.nan),
        Target(2000, at_least=True),
        every_config=True,
    )
    for rate in bench.plan.rates:
        target = Target(3.0) if rate == 1000 else None

        def skipped(x: Samples, rate: int = rate) -> str:
            return f"({x.skipped[rate]})" if rate in x.skipped else ""

        add(
            f"{rate} req/s open loop p50",
            "ms",
            lambda x, r=rate: p(x.open.get(r, []), 50),
            note_of=skipped,
        )
        add(
            f"{rate} req/s open loop p99",
            "ms",
            lambda x, r=rate: p(x.open.get(r, []), 99),
            note_of=skipped,
        )
        add(
            f"{rate} req/s added latency p99",
            "ms",
            lambda x, r=rate: p(x.open.get(r, []), 99),
            target,
            added=True,
            note_of=skipped,
            every_config=True,
        )
    add("stream (100 chunks in one burst) TTFT p50", "ms", lambda x: p(x.ttft, 50))
    add("stream added TTFT p50", "ms", lambda x: p(x.ttft, 50), Target(0.5), added=True)
    add("stream added TTFT p99", "ms", lambda x: p(x.ttft, 99), added=True)
    add("stream total p50", "ms", lambda x: p(x.total, 50))
    add("stream added total p50", "ms", lambda x: p(x.total, 50), added=True)
    paced = f"paced stream (100 chunks {CHUNK_GAP_MS:g} ms apart)"
    add(f"{paced} added TTFT p50", "ms", lambda x: p(x.paced_ttft, 50), added=True)
    add(f"{paced} gap between chunks p50", "ms", lambda x: p(x.paced_gaps, 50))
    add(f"{paced} gap between chunks p99", "ms", lambda x: p(x.paced_gaps, 99))
    add(f"{paced} added gap p50", "ms", lambda x: p(x.paced_gaps, 50), added=True)
    add(f"{paced} added total p50", "ms", lambda x: p(x.paced_total, 50), added=True)
    for kind in ("500", "429"):
        add(f"failover after {kind}: latency p50", "ms", lambda x, k=kind: p(x.failover[k], 50))
        add(
            f"failover after {kind}: added over direct-to-fallback p50",
            "ms",
            lambda x, k=kind: p(x.failover[k], 50),
            Target(5.0),
            added=True,
        )
        add(
            f"failover after {kind}: added over direct-to-fallback p99",
            "ms",
            lambda x, k=kind: p(x.failover[k], 99),
            Target(5.0),
            added=True,
        )
    out += [
        Row("RSS after start, idle", "MB", e.key, math.nan, e.idle_rss, litellm_endpoint.idle_rss)
        for e in sidecars
    ]
    out += [
        Row(
            "peak RSS (whole run, under load)",
            "MB",
            e.key,
            math.nan,
            e.peak_rss,
            litellm_endpoint.peak_rss,
            Target(80),
        )
        for e in sidecars
    ]
    add("saturated: proxy process CPU", "% of a core", lambda x: mean(x.sat_proxy_cpu))
    add(
        "saturated: load core busy (vegeta, mock, Redis, sink)",
        "%",
        lambda x: mean([b.get(LOAD_CORE, math.nan) for b in x.sat_busy]),
    )
    add("saturated: vegeta CPU", "% of a core", lambda x: mean(x.sat_generator))
    return out


FLOOR_FIGURES: list[tuple[str, Callable[[Samples], float], bool]] = [
    ("c=1 added latency p50", lambda x: p(x.c1, 50), True),
    ("c=1 added latency p99", lambda x: p(x.c1, 99), True),
    ("1000 req/s added latency p99", lambda x: p(x.open.get(1000, []), 99), True),
    ("stream added TTFT p50", lambda x: p(x.ttft, 50), False),
    ("failover after 500: added p50", lambda x: p(x.failover.get("500", []), 50), False),
]
"""Figures shown beside the byte relay's: (name, figure, measured for every configuration)."""


def floor_table(bench: Bench) -> list[str]:
    """What the byte relay adds (the machine's floor for a proxy) and what each sidecar
    configuration adds beyond it, in ms."""
    s = bench.samples
    direct, relay = s["direct"], s[RELAY]
    keys = [e.key for e in bench.endpoints if e.key in SIDECAR_CONFIGS]
    head = ["Figure (ms)", "byte relay", *(f"`{k}`" for k in keys)]
    head += [f"`{k}` beyond relay" for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, get, every in FLOOR_FIGURES:
        base = get(direct)
        floor = get(relay) - base
        added = [get(s[k]) - base if every or k in MAIN_CONFIGS else math.nan for k in keys]
        cells = [name, number(floor), *map(number, added), *(number(a - floor) for a in added)]
        lines.append("| " + " | ".join(cells) + " |")  # `number` writes "-" for not measured
    return lines


def report(
    bench: Bench, versions: dict[str, str], started: datetime, took: float, foreign: float
) -> str:
    lines = [
        f"# Switchboard sidecar benchmark, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {versions['cpu']}, {versions['cores']} cores, Linux {versions['kernel']}, "
        f"CPU idle driver {versions['idle']}. "
        f"Python {versions['python']}, aiohttp {versions['aiohttp']}, uvloop "
        f"{versions['uvloop']}; LiteLLM {versions['litellm']} (Python {versions['py_litellm']}); "
        f"vegeta {versions['vegeta']}; redis-server {versions['redis']}. The run took "
        f"{took:.0f} s; other work on the machine used {foreign:.0f} % of a core on average "
        "meanwhile (CPU time of processes not started by the benchmark). Waking the other "
        f"core: a one-byte round trip between cores {PROXY_CORE} and {LOAD_CORE} took "
        f"{bench.wake_us[0]:.0f} µs before the run and {bench.wake_us[1]:.0f} µs after "
        f"(on one core: {bench.wake_us[2]:.0f} µs); every proxy hop that crosses cores "
        "pays about half of it. Code right after the core slept: a fixed piece of Python work "
        f"took {bench.after_sleep_us[0]:.0f} µs back to back on core {PROXY_CORE} and "
        f"{bench.after_sleep_us[1]:.0f} µs right after a 0.5 ms wait "
        f"(x{bench.after_sleep_us[1] / bench.after_sleep_us[0]:.2f}); at concurrency 1 a "
        "proxy's work always follows a wait, under saturation it runs back to back.",
        "",
        host_speed(bench),
        "",
        "Targets, alternated round by round: **Direct** = the client straight to the mock "
        "provider (`switchboard mock-provider`, 0 ms added latency); **Sidecar** = "
        "`switchboard sidecar`, in the configuration the row names; **LiteLLM** = "
        "`litellm --num_workers 1`, no database, master key set, access log off. Proxies run "
        f"pinned to core {PROXY_CORE}; vegeta, the mock, Redis and the OTLP sink to core "
        f"{LOAD_CORE}; every benchmark process at nice {PRIORITY} when run as root.",
        "",
        "Sidecar configurations (both with cost accounting from the price catalog, Prometheus "
        "metrics, a FeatureBudget checked on every request, attribution and the "
        "`x-switchboard-*` headers):",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in SIDECAR_CONFIGS.items()]
    lines += [
        "",
        "`mem` and `redis` run every phase; `mem-otlp` and `redis-noop` run the c=1, saturated "
        "and open-loop phases only, to split `redis`'s cost between its ledger and its spans.",
    ]
    lines += [
        "",
        "Latency figures are the median over rounds of each round's percentile. `added` = the "
        "proxy's figure minus the direct call's. Open loop: latency from each request's "
        f"*scheduled* send time (no coordinated omission), the first {OPEN_LOOP_WARMUP:g} s "
        "left out. Failover: direct = a call straight to the fallback model.",
        "",
        *table(rows(bench)),
        "",
        "## The machine's floor",
        "",
        "A byte relay (`bench/relay.py`: uvloop, one upstream connection per client "
        "connection, bytes copied as they come, no HTTP parsing) on the proxy core, measured in "
        "the same rounds: what any proxy pays on this machine for its two extra hops before "
        "doing any work. Added latency in ms, as above; *beyond relay* = the sidecar's added "
        "latency minus the relay's.",
        "",
        *floor_table(bench),
        "",
        *evidence(bench),
    ]
    return "\n".join(lines) + "\n"


ISSUE_MACHINE = {"direct": 20_000.0, "litellm": 130.0}
"""Saturated req/s of the direct target and of LiteLLM on the machine where issue 6 set its
targets (its text): how fast this host is compared with that one."""


def host_speed(bench: Bench) -> str:
    """A sentence comparing this host's speed with the machine the targets were set on."""
    best = {k: max(bench.samples[k].sat_rate, default=math.nan) for k in ISSUE_MACHINE}
    parts = [
        f"{name} {best[key]:,.0f} req/s (there ~{ISSUE_MACHINE[key]:,.0f}: "
        f"{best[key] / ISSUE_MACHINE[key]:.2f} of that speed)"
        for key, name in (("direct", "the direct target"), ("litellm", "LiteLLM"))
    ]
    return (
        "Host speed: the targets of issue 6 were set on a machine of this kind on which the "
        "mock served ~20,000 req/s directly and LiteLLM saturated at ~130; here, saturated, "
        f"{parts[0]} and {parts[1]}. The targets are absolute figures, which a slower host misses "
        "sooner; the sidecar/LiteLLM ratios depend on it much less."
    )


def evidence(bench: Bench) -> list[str]:
    """How many samples, errors, the generator's schedule, and the failover checks."""
    lines = [
        "## Run details",
        "",
        f"Steps measured again because other work on the machine took more than "
        f"{DISTURBED:g} % of a core during them: {bench.remeasured}.",
        "",
    ]
    for endpoint in bench.endpoints:
        s = bench.samples[endpoint.key]
        count = sum(len(r) for r in s.c1)
        parts = [
            f"c=1 {count} requests in {len(s.c1)} rounds",
            f"saturated {', '.join(f'{r:,.0f}' for r in s.sat_rate)} req/s per round",
            f"streams {sum(len(r) for r in s.ttft)}",
            f"paced streams {sum(len(r) for r in s.paced_total)}",
            f"failed requests {s.errors}",
        ]
        rounds_c1 = ", ".join(f"{percentile(r, 99) * MS:.2f}" for r in s.c1)
        parts.append(f"c=1 p99 per round {rounds_c1} ms")
        for rate, lags in sorted(s.open_lag.items()):
            per_round = ", ".join(f"{percentile(r, 99) * MS:.2f}" for r in s.open[rate])
            parts.append(
                f"{rate}/s: p99 per round {per_round} ms, sent at most {max(lags) * MS:.2f} ms "
                f"behind schedule (p99 of a round), achieved {mean(s.open_rate[rate]):,.0f}/s, "
                f"vegeta {mean(s.open_generator[rate]):.0f} % CPU"
            )
        for kind, tried in sorted(s.failover_primary_hits.items()):
            answers = sum(len(r) for r in s.failover[kind])
            parts.append(f"failover {kind}: primary tried {tried} times for {answers} answers")
        lines.append(f"- **{endpoint.key}**: " + "; ".join(parts))
    return lines


# ---- main -------------------------------------------------------------------------------------


def own_cpu(pids: Sequence[int]) -> float:
    """CPU seconds of the benchmark: its children (and theirs) and this process, with the
    vegeta runs it has reaped."""
    times = os.times()
    mine = times.user + times.system + times.children_user + times.children_system
    return mine + sum(cpu_seconds(pid) for pid in pids)


def versions(vegeta: Vegeta, litellm_bin: Path) -> dict[str, str]:
    import aiohttp
    import uvloop

    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    redis_version = re.search(r"v=(\S+)", redis.stdout)
    py_litellm = subprocess.run(
        [str(litellm_bin / "python"), "--version"], capture_output=True, text=True
    ).stdout.split()[-1]
    return {
        **machine(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uvloop.__version__,
        "litellm": litellm_version(litellm_bin),
        "py_litellm": py_litellm,
        "vegeta": vegeta.version(),
        "redis": redis_version.group(1) if redis_version else "?",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check the harness")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    parser.add_argument(
        "--profile", action="store_true", help="also profile each sidecar with py-spy"
    )
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("the benchmark needs two cores (proxy on one, load on the other)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {LOAD_CORE})
    raise_own_priority()
    plan = Plan.quick() if args.quick else Plan()
    vegeta = Vegeta(ensure_vegeta())
    litellm_bin = ensure_litellm()
    started = datetime.now(UTC)
    began = time.perf_counter()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        redis_url, redis_child = start_redis(stack, workdir)
        sink_child = Child(
            "otlp-sink", pinned([PYTHON, str(ROOT / "bench" / "otlp_sink.py")], LOAD_CORE)
        )
        sink_line = stack.enter_context(running(sink_child, READY_SINK))
        sink = f"http://127.0.0.1:{port_of(sink_line, READY_SINK)}"
        mock_argv = [PYTHON, "-m", "switchboard.mockprovider", "--port", "0", "--name", "mock"]
        mock_child = Child("mock", pinned([*mock_argv, "--api-key", MOCK_KEY], LOAD_CORE))
        mock_port = port_of(stack.enter_context(running(mock_child, READY_MOCK)), READY_MOCK)
        mock = f"http://127.0.0.1:{mock_port}"
        relay_argv = [
            PYTHON,
            str(ROOT / "bench" / "relay.py"),
            "--upstream",
            f"127.0.0.1:{mock_port}",
        ]
        relay_child = Child(RELAY, pinned(relay_argv, PROXY_CORE))
        relay_port = port_of(stack.enter_context(running(relay_child, READY_RELAY)), READY_RELAY)
        mock_auth = {"Authorization": f"Bearer {MOCK_KEY}"}
        endpoints = [
            Endpoint("direct", "direct", mock + "/v1", mock_auth),
            Endpoint(
                RELAY, "byte relay", f"http://127.0.0.1:{relay_port}/v1", mock_auth, relay_child
            ),
            *(
                start_sidecar(
                    stack,
                    workdir,
                    key,
                    mock + "/v1",
                    redis_url if SIDECAR_SETUP[key][0] else None,
                    sink if SIDECAR_SETUP[key][1] else None,
                )
                for key in SIDECAR_CONFIGS
            ),
        ]
        litellm_child, litellm_base = start_litellm(litellm_bin, workdir, mock + "/v1", MOCK_KEY)
        stack.callback(litellm_child.stop)
        endpoints.append(
            Endpoint(
                "litellm",
                "LiteLLM",
                litellm_base + "/v1",
                {"Authorization": f"Bearer {MASTER_KEY}"},
                litellm_child,
            )
        )
        for endpoint in endpoints:
            if endpoint.child is not None:
                endpoint.idle_rss = rss_mb(endpoint.child.pid)
        children = [redis_child, sink_child, mock_child, *(e.child for e in endpoints if e.child)]
        bench = Bench(plan, vegeta, mock, endpoints, children)
        wake_before = wake_round_trip_us(PROXY_CORE, LOAD_CORE)
        bench.after_sleep_us = after_sleep_us(PROXY_CORE)
        measured, busy_before = time.perf_counter(), busy_seconds()
        ours_before = own_cpu([c.pid for c in children])
        bench.run()
        spans = http_json(sink + "/stats")
        ours = own_cpu([c.pid for c in children]) - ours_before
        foreign = busy_seconds() - busy_before - ours
        foreign = 100 * max(0.0, foreign) / (time.perf_counter() - measured)
        bench.wake_us = (
            wake_before,
            wake_round_trip_us(PROXY_CORE, LOAD_CORE),
            wake_round_trip_us(LOAD_CORE, LOAD_CORE),
        )
        took = time.perf_counter() - began
        text = report(bench, versions(vegeta, litellm_bin), started, took, foreign)
        text += f"- OTLP sink received {spans}\n"
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{started:%Y-%m-%d}{'-quick' if args.quick else ''}"
        if args.profile:
            for path in bench.profile(out, stem, workdir):
                text += f"- profile: `{path.relative_to(out)}`\n"
    name = f"{stem}.md"
    (out / name).write_text(text)
    print()
    print(text)
    print(f"written to {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
