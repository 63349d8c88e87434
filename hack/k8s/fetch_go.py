"""Fetch a Go toolchain from the Go module proxy when the machine has none recent enough.

Go publishes every release as the module `golang.org/toolchain` (that is how `go` itself
switches toolchains), so a machine that can reach the module proxy can get Go without
go.dev. The zip is checked against the checksum database (through the proxy) before use.

    python3 fetch_go.py MIN_VERSION CACHE_DIR   ->  prints the toolchain's bin directory

The newest patch release of MIN_VERSION's minor line is taken.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import re
import shutil
import stat
import sys
import urllib.request
import zipfile
from pathlib import Path

MODULE = "golang.org/toolchain"
_EXECUTABLES = ("bin/", "pkg/tool/")


def _proxy() -> str:
    for entry in os.environ.get("GOPROXY", "https://proxy.golang.org").split(","):
        if entry.startswith("http"):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:
        return bytes(response.read())


def _platform() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    return f"{platform.system().lower()}-{arch}"


def _newest_patch(minimum: str, versions: list[str], suffix: str) -> str:
    major, minor = minimum.split(".")[:2]
    found = re.compile(rf"^v0\.0\.1-go{major}\.{minor}\.(\d+)\.{re.escape(suffix)}$")
    patches = [int(m.group(1)) for v in versions if (m := found.match(v))]
    floor = int([*minimum.split("."), "0"][2])
    candidates = [p for p in patches if p >= floor]
    if not candidates:
        raise SystemExit(f"fetch_go: no Go {major}.{minor}.x >= {minimum} for {suffix}")
    return f"v0.0.1-go{major}.{minor}.{max(candidates)}.{suffix}"


def _dirhash(archive: zipfile.ZipFile) -> str:
    """The checksum database's h1: hash of a module zip (sha256 over sorted file hashes)."""
    summary = "".join(
        f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n"
        for name in sorted(n for n in archive.namelist() if not n.endswith("/"))
    )
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def fetch(minimum: str, cache: Path) -> Path:
    proxy = _proxy()
    versions = _get(f"{proxy}/{MODULE}/@v/list").decode().split()
    version = _newest_patch(minimum, versions, _platform())
    root = cache / version
    if (root / "bin" / "go").exists():
        return root / "bin"
    data = _get(f"{proxy}/{MODULE}/@v/{version}.zip")
    lookup = _get(f"{proxy}/sumdb/sum.golang.org/lookup/{MODULE}@{version}").decode()
    wanted = re.search(rf"^{re.escape(MODULE)} {re.escape(version)} (h1:\S+)$", lookup, re.M)
    archive = zipfile.ZipFile(io.BytesIO(data))
    if wanted is None or _dirhash(archive) != wanted.group(1):
        raise SystemExit(f"fetch_go: {MODULE}@{version} does not match the checksum database")
    prefix = f"{MODULE}@{version}/"
    staging = cache / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for info in archive.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        target = staging / info.filename[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(info))
        relative = info.filename[len(prefix) :]
        # Module zips need not carry permission bits; Go's own tools live in these two places.
        if (info.external_attr >> 16) & stat.S_IXUSR or relative.startswith(_EXECUTABLES):
            target.chmod(0o755)
    staging.rename(root)
    return root / "bin"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: fetch_go.py MIN_VERSION CACHE_DIR")
    print(fetch(sys.argv[1], Path(sys.argv[2])))
