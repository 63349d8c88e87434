"""Edge: the config file — load it, compile it, watch it, swap it in atomically.

A broken edit is logged with its reasons and counted; the last good config stays in force.
Requests already running finish on the config they started with (they hold a snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from switchboard.config.load import YAML_SUFFIXES, ConfigError, load_config
from switchboard.config.runtime import PriceLookup, RuntimeConfig, compile_runtime
from switchboard.sidecar.deps import RuntimeHolder
from switchboard.telemetry.metrics import Metrics

log = logging.getLogger("switchboard.sidecar.reload")

Signature = tuple[tuple[str, int, int, int], ...]


class ConfigSource:
    """A config file or directory (a ConfigMap volume works: its symlink swaps are seen)."""

    def __init__(self, path: Path, env: Mapping[str, str], price_lookup: PriceLookup) -> None:
        self.path = path
        self._env = env
        self._price_lookup = price_lookup

    def signature(self) -> Signature:
        """What changes when the content may have changed (following symlinks)."""
        try:
            if self.path.is_dir():
                files = sorted(
                    p for p in self.path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file()
                )
            else:
                files = [self.path]
            out = []
            for file in files:
                st = os.stat(file)
                out.append((file.name, st.st_ino, st.st_mtime_ns, st.st_size))
            return tuple(out)
        except OSError:
            return ()

    def load(self) -> RuntimeConfig:
        """The compiled config now at `path`; ConfigError when it cannot be used."""
        return compile_runtime(
            load_config(self.path), env=self._env, price_lookup=self._price_lookup
        )


def publish(runtime: RuntimeConfig, metrics: Metrics, previous: RuntimeConfig | None) -> None:
    if previous is not None:
        metrics.config_info.remove(previous.config.policy, previous.hash)
    metrics.config_info.labels(runtime.config.policy, runtime.hash).set(1)


async def watch(
    source: ConfigSource, holder: RuntimeHolder, metrics: Metrics, interval: float
) -> None:
    """Poll the source and swap in every good new version until cancelled."""
    seen = source.signature()
    while True:
        await asyncio.sleep(interval)
        current = source.signature()
        if current == seen:
            continue
        seen = current
        try:
            runtime = source.load()
        except ConfigError as exc:
            metrics.config_reloads.labels("error").inc()
            log.error(
                "config reload rejected, keeping config %s: %s",
                holder.current.hash,
                "; ".join(str(p) for p in exc.problems),
            )
            continue
        except Exception:
            metrics.config_reloads.labels("error").inc()
            log.exception("config reload failed, keeping config %s", holder.current.hash)
            continue
        if runtime.hash == holder.current.hash:
            continue
        previous, holder.current = holder.current, runtime
        publish(runtime, metrics, previous)
        metrics.config_reloads.labels("ok").inc()
        log.info("config reloaded: policy %s, hash %s", runtime.config.policy, runtime.hash)
