"""Edge: the ledger's outbox, an append-only file of records Redis did not take yet.

Protocol (one outbox file per ledger; the Helm chart backs its directory with an emptyDir):

- `append`: one line per record; open in append mode, write, flush, `os.fsync`, then return.
  A record is durable before `record()` returns, so SIGKILL loses only requests in flight.
- `claim`: rename `<outbox>` to `<outbox>.replaying` and hand that file to the replayer; new
  records go to a fresh `<outbox>` meanwhile. A `.replaying` file already there (left by a
  crash or by a replay Redis interrupted) is handed over first, and `<outbox>` stays put.
- `release`: delete `.replaying` once every line of it was applied.
- `reject`: a line that is not a record (a write torn by a crash) is moved to
  `<outbox>.rejected` for a human, never dropped silently.
Applying is idempotent (record ids), so a crash anywhere in between replays lines twice at
worst, which counts them once. Appends and claims hold one lock, so no line is written to a
file after it was claimed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

REPLAYING_SUFFIX = ".replaying"
REJECTED_SUFFIX = ".rejected"


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """The outbox file at `path` and its `.replaying` sibling."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replaying = path.with_name(path.name + REPLAYING_SUFFIX)
        self.rejected = path.with_name(path.name + REJECTED_SUFFIX)
        self._lock = asyncio.Lock()
        self._tail_checked = False

    async def append(self, line: str) -> None:
        """Add one line (no newline inside) and return once it is on disk."""
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as f:
            # A process killed in the middle of a write leaves a line without its newline:
            # end it, so that it does not swallow the next line (it is then skipped alone).
            prefix = b"" if self._tail_checked or created else self._tail_fix(f)
            f.write(prefix + line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._tail_checked = True
        if created:
            _fsync_directory(self.path.parent)

    @staticmethod
    def _tail_fix(f: BinaryIO) -> bytes:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return b""
        f.seek(end - 1)
        return b"" if f.read(1) == b"\n" else b"\n"

    async def claim(self) -> Path | None:
        """The file to replay now: `.replaying` if present, else `<outbox>` renamed to it."""
        async with self._lock:
            if self.replaying.exists():
                return self.replaying
            if not self.path.exists():
                return None
            self.path.rename(self.replaying)
            _fsync_directory(self.path.parent)
            return self.replaying

    def release(self) -> None:
        """Forget the claimed file: every line of it was applied."""
        self.replaying.unlink(missing_ok=True)

    def reject(self, lines: Sequence[str]) -> None:
        """Keep lines that cannot be replayed in `<outbox>.rejected`."""
        with open(self.rejected, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> bool:
        """Whether anything waits to be replayed."""
        return self.path.exists() or self.replaying.exists()


def lines_of(path: Path, batch: int) -> Iterator[list[str]]:
    """The non-empty lines of `path`, `batch` at a time (a file may be large after an outage)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines: list[str] = []
        for raw in f:
            line = raw.strip()
            if line:
                lines.append(line)
            if len(lines) >= batch:
                yield lines
                lines = []
        if lines:
            yield lines
