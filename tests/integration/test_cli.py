"""`switchboard validate` and `render` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "demo" / "policy.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_accepts_the_example_with_a_summary() -> None:
    result = run("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: RoutingPolicy demo: 4 providers, 7 models")


def test_validate_prints_every_error_with_its_path(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[0]["spec"]["routes"][0]["strategy"] = "random"
    docs[0]["spec"]["providers"][0]["timeoutSeconds"] = -1
    docs.append(
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "FeatureBudget",
            "metadata": {"name": "neg"},
            "spec": {"feature": "x", "limitUSD": -5, "period": "yearly"},
        }
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    result = run("validate", str(bad))
    assert result.returncode == 1
    err = result.stderr
    assert "spec.routes[0].strategy" in err
    assert "spec.providers[0].timeoutSeconds" in err
    assert "FeatureBudget/neg: spec.limitUSD" in err
    assert "FeatureBudget/neg: spec.period" in err
    assert "Traceback" not in err


def test_validate_rejects_a_model_without_any_price(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[0]["spec"]["models"].append({"name": "house-model-7b", "provider": "openai"})
    bad = tmp_path / "unpriced.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert "house-model-7b" in result.stderr and "price" in result.stderr


def test_render_prints_a_versioned_sidecar_config() -> None:
    result = run("render", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert (config["kind"], config["version"], config["policy"]) == ("SidecarConfig", 1, "demo")
