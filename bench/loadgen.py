"""Edge: the load generator — vegeta (Go, open loop at a constant rate, or closed loop with a
fixed number of workers), installed with `go install` into a cache outside the repository and
run pinned to the load core. Each run's results come back as `Hit`s, with the CPU time vegeta
used, so that the table can show the generator was not the bottleneck.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.figures import Hit
from bench.procs import LOAD_CORE, busy_percent, core_times, pinned

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "switchboard" / "bench"


def ensure_vegeta() -> Path:
    """The vegeta binary, built from the Go module proxy on first use."""
    binary = CACHE / "bin" / "vegeta"
    if binary.exists():
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError("vegeta is not built and Go is not installed (need go >= 1.22)")
    print(f"building {VEGETA_MODULE} into {binary.parent} ...", flush=True)
    subprocess.run(
        [go, "install", VEGETA_MODULE],
        env={**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"},
        check=True,
    )
    return binary


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent again and again."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def vegeta_json(self) -> str:
        header = {"Content-Type": ["application/json"]}
        header.update({k: [v] for k, v in self.headers.items()})
        doc = {
            "method": "POST",
            "url": self.url,
            "body": base64.b64encode(self.body).decode(),
            "header": header,
        }
        return json.dumps(doc)


@dataclass
class Run:
    """What one vegeta run measured."""

    hits: list[Hit]
    wall: float
    generator_cpu: float
    """CPU seconds vegeta used (user + system)."""
    busy: dict[int, float]
    """Per core: percent busy during the run."""
    headers: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> list[Hit]:
        return [h for h in self.hits if h.ok]

    @property
    def generator_percent(self) -> float:
        return 100 * self.generator_cpu / self.wall if self.wall else 0.0


class Vegeta:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def version(self) -> str:
        """The version built (`go install` leaves the binary's own version field empty)."""
        out = subprocess.run([str(self.binary), "-version"], capture_output=True, text=True)
        fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
        version = fields.get("Version", "").strip() or VEGETA_MODULE.rsplit("@", 1)[1]
        runtime = fields.get("Runtime", "").strip()
        return f"{version} ({runtime})" if runtime else version

    def attack(
        self,
        request: Request,
        *,
        rate: float | None = None,
        workers: int = 1,
        duration: float | None = None,
        count: int | None = None,
        keep_headers: bool = False,
    ) -> Run:
        """Closed loop with `workers` when `rate` is None, else open loop at `rate` per second;
        for `duration` seconds or `count` requests."""
        with tempfile.TemporaryDirectory(prefix="bench-vegeta-") as tmp:
            out = Path(tmp) / "results.bin"
            argv = [str(self.binary), "attack", "-format", "json", "-max-body", "0"]
            argv += ["-output", str(out), "-timeout", "30s", "-http2=false"]
            if rate is None:
                argv += ["-rate", "0", "-workers", str(workers), "-max-workers", str(workers)]
            else:
                argv += ["-rate", f"{rate:g}/1s", "-workers", str(workers)]
                argv += ["-max-workers", "4000"]
            line = request.vegeta_json() + "\n"
            if count is not None:
                # -lazy reads one target per request: the attack ends when the lines do.
                argv += ["-lazy"]
                stdin = line * count
            else:
                argv += ["-duration", f"{duration or 1:g}s"]
                stdin = line
            before = core_times()
            began = time.perf_counter()
            proc = subprocess.Popen(
                pinned(argv, LOAD_CORE), stdin=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert proc.stdin is not None and proc.stderr is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - began
            busy = busy_percent(before, core_times())
            errors = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            if proc.returncode != 0:
                raise RuntimeError(f"vegeta attack failed ({proc.returncode}): {errors}")
            encoded = subprocess.run(
                [str(self.binary), "encode", "-to", "csv", str(out)],
                capture_output=True,
                check=True,
            ).stdout
        hits, headers = _hits(encoded, keep_headers)
        return Run(hits, wall, usage.ru_utime + usage.ru_stime, busy, headers)


def _hits(encoded: bytes, keep_headers: bool) -> tuple[list[Hit], list[bytes]]:
    rows = list(csv.reader(io.StringIO(encoded.decode())))
    hits: list[Hit] = []
    headers: list[bytes] = []
    origin = min((int(r[0]) for r in rows), default=0)
    for row in rows:
        error = row[5]
        if "no targets to attack" in error:  # the -lazy attack ran out of lines
            continue
        sent = (int(row[0]) - origin) / 1e9
        hits.append(Hit(sent, int(row[8]), int(row[2]) / 1e9, row[1] == "200" and not error))
        if keep_headers:
            headers.append(base64.b64decode(row[11]))
    return hits, headers
