"""Every manifest in examples/ passes `switchboard validate`, alone and with its directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from switchboard.api import names
from switchboard.config.commands import validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = {names.KIND_ROUTING_POLICY, names.KIND_FEATURE_BUDGET}


def manifests() -> list[Path]:
    """YAML files of examples/ that hold Switchboard resources (not, say, Helm values)."""
    return [
        path
        for path in sorted(EXAMPLES.rglob("*.yaml"))
        if any(doc and doc.get("kind") in KINDS for doc in yaml.safe_load_all(path.read_text()))
    ]


def test_examples_include_a_policy_and_a_budget_at_top_level_and_the_demo() -> None:
    found = {str(p.relative_to(EXAMPLES)) for p in manifests()}
    assert {"routingpolicy.yaml", "featurebudget.yaml", "demo/policy.yaml"} <= found


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_manifest_validates(path: Path) -> None:
    ok, lines = validate([path])
    assert ok, "\n".join(lines)


@pytest.mark.parametrize(
    "directory",
    sorted({p.parent for p in manifests()}),
    ids=lambda p: str(p.relative_to(EXAMPLES)) or "examples",
)
def test_budgets_validate_against_the_policy_beside_them(directory: Path) -> None:
    ok, lines = validate([p for p in manifests() if p.parent == directory])
    assert ok, "\n".join(lines)
    assert "RoutingPolicy" in lines[0]


def test_no_two_examples_name_the_same_object() -> None:
    """`kubectl apply -R -f examples/` would silently overwrite one with the other."""
    seen: dict[tuple[str, str, str], Path] = {}
    for path in manifests():
        for doc in yaml.safe_load_all(path.read_text()):
            meta = doc["metadata"]
            key = (doc["kind"], meta.get("namespace", "default"), meta["name"])
            assert key not in seen, f"{key} is in {seen[key]} and {path}"
            seen[key] = path
