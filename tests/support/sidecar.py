"""Start `switchboard sidecar` as a real process on a free loopback port."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import ServerProcess

READY = re.compile(r"switchboard sidecar listening on http://[\d.]+:(?P<port>\d+)")


class Sidecar(ServerProcess):
    """A sidecar process; `.url` is the OpenAI base URL (ending in /v1)."""

    def __init__(
        self,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        reload_interval: float = 0.05,
    ) -> None:
        argv = [sys.executable, "-m", "switchboard.cli", "sidecar", "--config", str(config)]
        argv += ["--port", "0", "--reload-interval", str(reload_interval), *args]
        super().__init__(argv, READY, env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/v1"


def write_manifests(path: Path, *documents: Mapping[str, Any]) -> Path:
    """Write documents as one multi-document YAML file (atomically: write, then rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    tmp.replace(path)
    return path


def policy(
    providers: Sequence[Mapping[str, Any]],
    models: Sequence[Mapping[str, Any]],
    routes: Sequence[Mapping[str, Any]],
    name: str = "test",
    **spec: Any,
) -> dict[str, Any]:
    """A RoutingPolicy manifest."""
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "providers": list(providers),
            "models": list(models),
            "routes": list(routes),
            **spec,
        },
    }
