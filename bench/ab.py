"""A/B: sidecars of two checkouts (or two configurations) side by side at concurrency 1.

    python bench/ab.py --side old=/tmp/old/.venv/bin/python:redis \\
                       --side new=.venv/bin/python:redis [--rounds 4] [--requests 1000]

Each `--side LABEL=PYTHON:CONFIG[@NAME=VALUE]` starts `switchboard sidecar` from that
interpreter's installation (a checkout installed with `pip install -e` into its own
virtualenv) in one of `run.py`'s configurations, with NAME=VALUE in its environment if given,
pinned to the proxy core, against one mock provider (and Redis and the OTLP sink when a
configuration needs them) on the load core. The client sends plain requests, then 100-chunk
streams, one at a time, in blocks of `--block` per side, the sides (and the direct call to the
mock) taking turns block by block, so that a host that changes speed during the run changes it
for every side alike. It prints each side's p50, p90 and p99 of the whole latency and the
stream's time to first token and total, next to the direct call. Unlike `run.py`, which
reports the figures of issue 6, this answers one question: did a change move the c=1 figures?
A difference of 10 µs at p50 shows over 4 rounds of 1,000. Background work of one side (the
Redis ledger's batches) lands in the other sides' blocks too unless blocks are long.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import yaml

from bench.figures import percentile
from bench.procs import LOAD_CORE, PROXY_CORE, Child, pinned, raise_own_priority
from bench.run import (
    MOCK_KEY,
    MODEL,
    PROMPT,
    READY_MOCK,
    READY_SIDECAR,
    READY_SINK,
    ROOT,
    SIDECAR_SETUP,
    policy,
    port_of,
    running,
    start_redis,
    stream_body,
)
from bench.sse_client import StreamClient


@dataclass
class Side:
    label: str
    python: str
    config: str
    plain: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def side_of(text: str) -> Side:
    text, _, extra = text.partition("@")
    label, _, rest = text.partition("=")
    python, _, config = rest.rpartition(":")
    if not label or not python or config not in SIDECAR_SETUP:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected LABEL=PYTHON:CONFIG, CONFIG one of {', '.join(SIDECAR_SETUP)}"
        )
    side = Side(label, python, config)
    if extra:
        key, _, value = extra.partition("=")
        side.env[key] = value
    return side


def summary(name: str, values: Sequence[float]) -> str:
    cuts = (percentile(values, q) * 1000 for q in (50, 90, 99))
    return f"{name} p50 {next(cuts):.3f} p90 {next(cuts):.3f} p99 {next(cuts):.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=side_of, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000, help="plain requests per round")
    parser.add_argument("--block", type=int, default=25, help="requests per side in a row")
    args = parser.parse_args(argv)
    sides: list[Side] = args.side
    raise_own_priority()
    os.sched_setaffinity(0, {LOAD_CORE})
    python = sys.executable
    plain = orjson.dumps({"model": MODEL, "messages": PROMPT, "max_tokens": 16})
    stream = stream_body(MODEL, 100)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ab-")))
        mock_argv = [python, "-m", "switchboard.mockprovider", "--port", "0", "--name", "mock"]
        mock = Child("mock", pinned([*mock_argv, "--api-key", MOCK_KEY], LOAD_CORE))
        mock_port = port_of(stack.enter_context(running(mock, READY_MOCK)), READY_MOCK)
        mock_base = f"http://127.0.0.1:{mock_port}/v1"
        redis_url = None
        if any(SIDECAR_SETUP[s.config][0] for s in sides):
            redis_url = start_redis(stack, work)[0]
        sink = None
        if any(SIDECAR_SETUP[s.config][1] for s in sides):
            child = Child(
                "otlp-sink", pinned([python, str(ROOT / "bench" / "otlp_sink.py")], LOAD_CORE)
            )
            sink_port = port_of(stack.enter_context(running(child, READY_SINK)), READY_SINK)
            sink = f"http://127.0.0.1:{sink_port}"
        clients: dict[str, StreamClient] = {}
        for side in sides:
            redis, spans = SIDECAR_SETUP[side.config]
            config = work / f"policy-{side.label}.yaml"
            documents = policy(mock_base, redis_url if redis else None)
            config.write_text(yaml.safe_dump_all(documents, sort_keys=False))
            argv = [
                str(Path(side.python).parent / "switchboard"),
                "sidecar",
                "--config",
                str(config),
            ]
            argv += ["--port", "0", "--feature", "bench", "--team", "perf", "--namespace", "bench"]
            argv += ["--outbox", str(work / f"outbox-{side.label}.jsonl")]
            env = {"BENCH_MOCK_KEY": MOCK_KEY, "OTEL_TRACES_EXPORTER": "none", **side.env}
            if spans and sink:
                env |= {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink}
            child = Child(f"sidecar-{side.label}", pinned(argv, PROXY_CORE), env=env)
            port = port_of(stack.enter_context(running(child, READY_SIDECAR)), READY_SIDECAR)
            clients[side.label] = StreamClient(f"http://127.0.0.1:{port}/v1/chat/completions", {})
        direct = Side("direct", python, "mem")
        auth = {"Authorization": f"Bearer {MOCK_KEY}"}
        clients[direct.label] = StreamClient(mock_base + "/chat/completions", auth)
        for client in clients.values():
            stack.callback(client.close)
            for _ in range(200):  # warm up: connections, caches, the collector's first passes
                client.stream(plain)
        order = [*sides, direct]
        for _ in range(args.rounds):
            for _ in range(args.requests // args.block):
                for side in order:
                    client = clients[side.label]
                    side.plain += (client.stream(plain).chunks[-1][0] for _ in range(args.block))
            for _ in range(args.requests // 3 // args.block):
                for side in order:
                    client = clients[side.label]
                    for received in [client.stream(stream) for _ in range(args.block)]:
                        timing = received.timing()
                        side.ttft.append(timing.ttft)
                        side.total.append(timing.total)
            order = order[1:] + order[:1]
        for side in order:
            print(
                f"{side.label} ({side.config if side is not direct else 'mock'}): "
                f"{summary('plain', side.plain)} | {summary('stream TTFT', side.ttft)} | "
                f"{summary('stream total', side.total)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
