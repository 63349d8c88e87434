"""Edge: the LiteLLM proxy the sidecar is compared with — installed from PyPI into a virtualenv
of its own (outside the repository), configured against the same mock, one worker, no
database, and its per-request access log off (the sidecar keeps none either).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bench.loadgen import CACHE
from bench.procs import PROXY_CORE, Child, free_port, pinned, wait_http

REQUIREMENT = "litellm[proxy]>=1.106,<1.107"
"""The issue pins LiteLLM 1.106; pip picks the newest 1.106.x whose dependencies install."""
VENV = CACHE / "litellm-venv"
MASTER_KEY = "sk-bench-master-0123456789abcdef"

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "uvicorn.access": {"level": "WARNING", "propagate": True},
        "uvicorn.error": {"level": "WARNING", "propagate": True},
    },
}


def ensure_litellm() -> Path:
    """The LiteLLM venv's bin directory; installs LiteLLM there on first use."""
    bin_dir = VENV / "bin"
    if (bin_dir / "litellm").exists():
        return bin_dir
    print(f"installing {REQUIREMENT} into {VENV} (once; about a minute) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, REQUIREMENT], check=True)
    return bin_dir


def litellm_version(bin_dir: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def config(mock_url: str, mock_key: str) -> dict[str, object]:
    """The same routes as the sidecar's policy: `gpt-4o-mini` straight to the mock, and
    `bench-failover` (upstream `gpt-4o`, made to fail) falling back to `gpt-4o-mini`."""

    def deployment(name: str, upstream: str) -> dict[str, object]:
        params = {"model": f"openai/{upstream}", "api_base": mock_url, "api_key": mock_key}
        return {"model_name": name, "litellm_params": {**params, "max_retries": 0}}

    return {
        "model_list": [
            deployment("gpt-4o-mini", "gpt-4o-mini"),
            deployment("gpt-4.1-mini", "gpt-4.1-mini"),
            deployment("bench-failover", "gpt-4o"),
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "router_settings": {
            "num_retries": 0,
            "fallbacks": [{"bench-failover": ["gpt-4o-mini"]}],
            "disable_cooldowns": True,
        },
        "general_settings": {"master_key": MASTER_KEY},
    }


def start_litellm(bin_dir: Path, workdir: Path, mock_url: str, mock_key: str) -> tuple[Child, str]:
    """LiteLLM on a free port, pinned to the proxy core; returns it and its base URL."""
    cfg = workdir / "litellm.yaml"
    cfg.write_text(yaml.safe_dump(config(mock_url, mock_key), sort_keys=False))
    log_cfg = workdir / "litellm-logging.json"
    log_cfg.write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    argv = [str(bin_dir / "litellm"), "--config", str(cfg), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1", "--log_config", str(log_cfg)]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    child = Child("litellm", pinned(argv, PROXY_CORE), env=env)
    child.start()
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health/liveliness", child)
    return child, base
