"""Pure: a summary of a py-spy profile in collapsed-stack form (`py-spy record --format raw`).

`python bench/hotspots.py PROFILE.txt [--top N] [--match TEXT]` prints the functions that hold
the most samples, inclusive (anywhere on the stack) and self (on top of the stack), as a
percentage of the samples in which the process was busy. Frames are `function (file:line)`;
lines are dropped so that one function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
IDLE = (
    "select (selectors.py",
    "_run_once",
    "run_forever",
    "uv_run",
    "epoll_wait",
    "Condition.wait (threading.py",
    "Pacer.__call__ (",  # the span exporter sleeping between slices, without the GIL
    "concurrent/futures/thread.py",  # a pool thread waiting for work (asyncio.to_thread)
)


@dataclass(frozen=True)
class Summary:
    samples: int
    inclusive: Counter[str]
    own: Counter[str]


def frame_name(frame: str) -> str:
    """`handler (switchboard/sidecar/pipeline.py:42)` -> `handler (sidecar/pipeline.py)`."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "switchboard/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({file})"


def summarise(lines: Iterable[str]) -> Summary:
    """Samples per function; a stack whose top is the event loop's wait counts as idle."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames or any(marker in frames[-1] for marker in IDLE):
            continue
        count = int(count_text)
        total += count
        names = [frame_name(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
    return Summary(total, inclusive, own)


def report(summary: Summary, top: int = 25, match: str = "") -> list[str]:
    def rows(counter: Counter[str]) -> list[str]:
        picked = [(n, c) for n, c in counter.most_common() if match in n][:top]
        return [f"  {100 * c / max(1, summary.samples):5.1f} %  {n}" for n, c in picked]

    return [
        f"busy samples: {summary.samples}",
        "inclusive (on the stack):",
        *rows(summary.inclusive),
        "self (top of the stack):",
        *rows(summary.own),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose name contains this")
    args = parser.parse_args()
    summary = summarise(Path(args.profile).read_text().splitlines())
    print("\n".join(report(summary, args.top, args.match)))


if __name__ == "__main__":
    main()
