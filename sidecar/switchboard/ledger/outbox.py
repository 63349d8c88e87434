"""Edge: the ledger's outbox, an append-only file of the records Redis has not applied yet.

Every record enters the outbox before the sidecar answers the request it prices, and leaves it
once Redis has applied it; the Helm chart backs the directory with an emptyDir. Protocol (one
outbox file per ledger):

- `append`: one line per record, written with one `write` on a descriptor kept open in append
  mode, on the event loop and without fsync: a line is in the kernel when `append` returns, so
  a sidecar killed at any moment (SIGKILL, OOM) loses no record of an answered request.
- `rotate`: rename `<outbox>` to `<outbox>.replaying` (only when no `.replaying` is there) and
  hand that file to the applier; new records go to a fresh `<outbox>` meanwhile. This is how
  the ledger takes a batch: it knows which records the renamed file holds.
- `sync`: fsync both files, for records that wait for Redis (it is down): they then survive a
  crash of the node too, not only of the process.
- `release`: delete `.replaying` once every line of it was applied.
- `reject`: a line that is not a record (a write torn by a crash) is moved to
  `<outbox>.rejected` for a human, never dropped silently.

Applying is idempotent (record ids), so a crash anywhere in between replays lines twice at
worst, which counts them once. `append` and `rotate` never wait (they are plain system calls
on the event loop), so no line is written to a file after it was renamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

REPLAYING_SUFFIX = ".replaying"
REJECTED_SUFFIX = ".rejected"


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory, if it exists."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
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
        self._fd: int | None = None
        # The paths as strings, for the calls the applier makes on every batch (os.* on a str
        # skips pathlib's per-call work: it showed in the profile of a sidecar at low rates).
        self._path = str(path)
        self._replaying = str(self.replaying)

    def append(self, line: bytes) -> None:
        """Add one line (no newline inside); it is in the kernel when this returns."""
        if self._fd is None:
            self._fd = self._open()
        try:
            os.write(self._fd, line + b"\n")
        except OSError:
            self._close()  # reopened next time, which ends a line this write may have torn
            raise

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self._path, flags, 0o600)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, flags, 0o600)
        # A process killed in the middle of a write leaves a line without its newline: end it,
        # so that it does not swallow the next line (it is then set aside alone).
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            os.write(fd, b"\n")
        return fd

    def holds_lines(self) -> bool:
        """Whether `<outbox>` holds anything (it may have been left by an earlier process)."""
        try:
            return os.stat(self._path).st_size > 0
        except FileNotFoundError:
            return False

    def rotate(self) -> bool:
        """Rename a non-empty `<outbox>` to `.replaying`; False when there is nothing to take
        or a `.replaying` is still waiting to be applied."""
        if os.path.exists(self._replaying) or not self.holds_lines():
            return False
        self._close()
        os.rename(self._path, self._replaying)
        # The next file is created now, by the applier, rather than by the next request's
        # `append` (creating a file costs ~20-40 µs here); if it cannot be, `append` will say.
        with contextlib.suppress(OSError):
            self._fd = self._open()
        return True

    async def sync(self) -> None:
        """Put both files on disk (records Redis did not take must survive a node crash)."""
        await asyncio.to_thread(self._sync)

    def _sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        else:
            _fsync_path(self.path)
        _fsync_path(self.replaying)
        _fsync_path(self.path.parent)

    def release(self) -> None:
        """Forget the `.replaying` file: every line of it was applied."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._replaying)

    def reject(self, lines: Sequence[str]) -> None:
        """Keep lines that cannot be replayed in `<outbox>.rejected`."""
        with open(self.rejected, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> bool:
        """Whether anything waits to be applied."""
        return self.holds_lines() or self.replaying.exists()

    def close(self) -> None:
        """Close the file; a later `append` opens it again. An empty `<outbox>` is removed."""
        self._close()
        if self.path.exists() and not self.holds_lines():
            self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
