"""Edge: the benchmark's child processes — start pinned to a core, wait until ready, stop —
and what /proc says about them (peak RSS, CPU time) and about the cores (busy time, a wake-up's
round trip, how much slower code runs right after the core slept).

Every child is started by this module and stopped by it, by its own pid; nothing else is
signalled. Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROXY_CORE = 0
"""The core every proxy under test (sidecar, LiteLLM) runs on."""
LOAD_CORE = 1
"""The core of the load generator, the mock provider, Redis, the OTLP sink and this script."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


PRIORITY = -10
"""Niceness of every benchmark process when running as root: other work on the machine
(a test suite, a build) then takes less from the cores being measured."""


def pinned(argv: Sequence[str], core: int) -> list[str]:
    """`argv` run on one core only (children inherit the affinity), at the benchmark's
    priority when allowed."""
    nice = ["nice", "-n", str(PRIORITY)] if os.geteuid() == 0 else []
    return [*nice, "taskset", "-c", str(core), *argv]


def raise_own_priority() -> bool:
    """This process at the benchmark's priority (root only); whether it was raised."""
    if os.geteuid() != 0:
        return False
    os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    return True


@dataclass
class Child:
    """A child process started by the benchmark; its stderr (and stdout after the ready line)
    goes to a log file."""

    name: str
    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, ready: re.Pattern[str] | None = None, timeout: float = 30.0) -> str:
        """Start; with `ready`, wait for a stdout line matching it and return that line."""
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the child
            prefix=f"bench-{self.name}-", suffix=".log", delete=False
        )
        self.log_path = Path(log.name)
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE if ready else log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        log.close()
        if ready is None:
            return ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.proc.stdout], [], [], 0.1)[0]:
                line = self.proc.stdout.readline().decode(errors="replace")
                if ready.search(line):
                    return line.strip()
                if not line and self.proc.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; this child only."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def wait_http(url: str, child: Child, timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200 (or `child` dies, or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{child.name} did not become ready at {url}:\n{child.log_tail()}")


# ---- /proc ------------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    out = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += _tree(int(child))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM, kept by the kernel) of a process and its descendants,
    summed: an upper bound of the tree's peak."""
    return sum(_status_kb(p, "VmHWM") for p in _tree(pid)) / 1024


def rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in _tree(pid)) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def busy_seconds() -> float:
    """CPU time used on all cores since boot (every process, the kernel included)."""
    return sum(busy for busy, _ in core_times().values()) / os.sysconf("SC_CLK_TCK")


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            numbers = [int(v) for v in values]
            idle = numbers[3] + numbers[4]  # idle + iowait
            out[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return out


def busy_percent(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    """How busy each core was between two `core_times()` readings."""
    out = {}
    for core, (busy, total) in after.items():
        busy0, total0 = before.get(core, (0, 0))
        out[core] = 100 * (busy - busy0) / max(1, total - total0)
    return out


def machine() -> dict[str, str]:
    """CPU model, cores, kernel, how an idle core waits."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": os.uname().release,
        "idle": cpu_idle(),
    }


def cpu_idle() -> str:
    """The kernel's cpuidle driver; for a guest's `haltpoll`, how long it polls before it halts
    (a halted virtual CPU has to be woken by the hypervisor, which costs far more)."""
    try:
        driver = Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
    except OSError:
        return "unknown"
    poll = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    if driver != "haltpoll" or not poll.exists():
        return driver
    limit = int(poll.read_text())
    if limit == 0:
        return "haltpoll, halting at once (guest_halt_poll_ns=0: no polling)"
    return f"haltpoll, polling up to {limit / 1000:.0f} µs before halting"


def wake_round_trip_us(core: int, peer: int, rounds: int = 5000) -> float:
    """Mean round trip, in microseconds, of one byte over a socketpair between
    this process on `core` and a child on `peer`: each leg wakes the other side. Between
    two cores of a virtual machine this is dominated by waking an idle core, which every
    proxy hop that crosses cores pays too."""
    here, there = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoing child
        try:
            os.sched_setaffinity(0, {peer})
            here.close()
            while data := there.recv(64):
                there.send(data)
        finally:
            os._exit(0)
    there.close()
    mask = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
        for _ in range(200):  # both sides settled on their cores
            here.send(b"x")
            here.recv(64)
        began = time.perf_counter()
        for _ in range(rounds):
            here.send(b"x")
            here.recv(64)
        return (time.perf_counter() - began) / rounds * 1e6
    finally:
        os.sched_setaffinity(0, mask)
        here.close()
        os.waitpid(pid, 0)


def _python_work(doc: dict[str, object], table: dict[str, int]) -> int:
    """A fixed piece of interpreter work, like a proxy's: JSON both ways, lookups, objects."""
    total = 0
    for _ in range(10):
        parsed = json.loads(json.dumps(doc))
        total += sum(table[key] for key in ("k1", "k500", "k999", "k77")) + len(parsed)
        total += len([(key, value) for key, value in parsed.items()])
    return total


def after_sleep_us(core: int, sleep: float = 0.0005, rounds: int = 1500) -> tuple[float, float]:
    """Median µs of the same piece of Python work on `core`, back to back and right after
    `sleep` seconds of waiting in epoll (the core goes idle). A virtual CPU that halted runs
    the code after it much slower; at concurrency 1 a proxy's work always follows a wait."""
    doc: dict[str, object] = {"model": "gpt-4o-mini", "messages": [{"role": "user"}] * 3}
    doc |= {f"f{i}": i for i in range(20)}
    table = {f"k{i}": i for i in range(1000)}
    poller, (reader, writer) = select.epoll(), socket.socketpair()
    poller.register(reader, select.EPOLLIN)
    mask = os.sched_getaffinity(0)
    timings: dict[bool, list[float]] = {False: [], True: []}
    try:
        os.sched_setaffinity(0, {core})
        for slept in (False, True, False, True):
            for _ in range(rounds // 2):
                if slept:
                    poller.poll(sleep)
                began = time.perf_counter()
                _python_work(doc, table)
                timings[slept].append(time.perf_counter() - began)
    finally:
        os.sched_setaffinity(0, mask)
        poller.close()
        reader.close()
        writer.close()
    back_to_back, after = (statistics.median(timings[k]) * 1e6 for k in (False, True))
    return back_to_back, after
