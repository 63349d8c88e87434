"""crdgen: the committed CRDs match the models, and the schemas are structural."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, create_model

from switchboard import crdgen
from switchboard.api import v1alpha1
from switchboard.api.v1alpha1 import FeatureBudget, RoutingPolicy

CRDS = Path(__file__).resolve().parents[2] / "crds"
POLICY = crdgen.structural_schema(RoutingPolicy)
BUDGET = crdgen.structural_schema(FeatureBudget)


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a kubectl-explain-like path."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    found = dict(nodes(schema))
    assert path in found, f"no {path} in the schema"
    return found[path]


def rules(schema: dict[str, Any]) -> dict[str, list[str]]:
    return {
        path: [v["message"] for v in node["x-kubernetes-validations"]]
        for path, node in nodes(schema)
        if "x-kubernetes-validations" in node
    }


def test_committed_crds_match_the_models_byte_for_byte() -> None:
    files = crdgen.crd_files()
    assert sorted(files) == [
        "switchboard.dev_featurebudgets.yaml",
        "switchboard.dev_routingpolicies.yaml",
    ]
    for name, text in files.items():
        committed = CRDS / name
        assert committed.is_file(), f"crds/{name} is missing: run `make crds`"
        assert committed.read_text() == text, f"crds/{name} is out of date: run `make crds`"


@pytest.mark.parametrize("schema", [POLICY, BUDGET], ids=["policy", "budget"])
def test_schema_has_only_structural_keywords(schema: dict[str, Any]) -> None:
    forbidden = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "const", "title", "nullable"}
    for path, node in nodes(schema):
        assert not forbidden & node.keys(), f"{path}: {sorted(forbidden & node.keys())}"
        assert "properties" not in node or "additionalProperties" not in node, path
        assert node.get("default", "") is not None, f"{path}: null default"


@pytest.mark.parametrize("schema", [POLICY, BUDGET], ids=["policy", "budget"])
def test_every_field_has_a_type_and_a_description(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert node.get("type") in {"object", "array", "string", "number", "integer", "boolean"}
        if path.startswith((".spec", ".status")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"
    assert at(schema, ".metadata") == {"type": "object"}


def test_money_and_percents_are_numbers_users_can_write_as_such() -> None:
    assert at(BUDGET, ".spec.limitUSD") == {
        "description": "Limit in USD per period.",
        "type": "number",
        "minimum": 0,
    }
    percent = at(BUDGET, ".spec.thresholds[].percent")
    assert percent["type"] == "number"
    assert (percent["minimum"], percent["exclusiveMinimum"], percent["maximum"]) == (0, True, 1000)
    price = at(POLICY, ".spec.models[].price")
    assert {name: p["type"] for name, p in price["properties"].items()} == {
        "inputPerMTok": "number",
        "outputPerMTok": "number",
        "cachedInputPerMTok": "number",
    }
    assert price["properties"]["outputPerMTok"]["default"] == 0
    assert price["required"] == ["inputPerMTok"]
    assert at(BUDGET, ".status.alertsSent[].percent")["type"] == "number"


def test_literals_become_enums_and_maps_become_additional_properties() -> None:
    strategy = at(POLICY, ".spec.routes[].strategy")
    assert strategy["enum"] == list(typing.get_args(v1alpha1.Strategy))
    assert at(POLICY, ".spec.providers[].api")["enum"] == ["openai"]
    assert at(POLICY, ".spec.dataResidency{}[]")["type"] == "string"
    assert at(POLICY, ".spec.models[].labels{}") == {"type": "string"}
    assert at(BUDGET, ".status.state")["enum"] == ["Ok", "Warning", "Downgraded", "Blocked"]


def test_defaults_are_kept_and_nested_models_default_to_empty_objects() -> None:
    assert at(POLICY, ".spec.routes[].strategy")["default"] == "fixed"
    assert at(POLICY, ".spec.routes[].retry")["default"] == {}
    assert at(POLICY, ".spec.routes[].retry.attempts")["default"] == 2
    assert at(POLICY, ".spec.providers[].timeoutSeconds")["default"] == 60
    assert at(BUDGET, ".spec.alerts")["default"] == {}
    assert "default" not in at(POLICY, ".spec.routes[].fallback")  # an empty list says nothing
    assert "default" not in at(POLICY, ".spec.routes[].match")  # None: the field is absent


def test_required_follows_the_models() -> None:
    assert POLICY["required"] == ["spec"]
    assert at(POLICY, ".spec")["required"] == ["providers", "models", "routes"]
    assert at(POLICY, ".spec.routes[]")["required"] == ["name", "targets"]
    assert at(BUDGET, ".spec")["required"] == ["feature", "limitUSD", "period"]
    assert at(BUDGET, ".status.conditions[]")["required"] == [
        "type",
        "status",
        "reason",
        "lastTransitionTime",
    ]


def test_status_schema_is_the_status_model() -> None:
    for schema, model in (
        (POLICY, v1alpha1.RoutingPolicyStatus),
        (BUDGET, v1alpha1.FeatureBudgetStatus),
    ):
        aliases = {f.alias or name for name, f in model.model_fields.items()}
        assert set(at(schema, ".status")["properties"]) == aliases


def test_cross_field_rules_are_cel_with_clear_messages() -> None:
    assert rules(POLICY) == {
        ".spec.providers": ["provider names must be unique"],
        ".spec.providers[].apiKey": ["set exactly one of secretKeyRef or env"],
        ".spec.models": ["model names must be unique"],
        ".spec.routes": ["route names must be unique"],
        ".spec.routes[]": ["weighted strategy needs a positive weight"],
        ".spec.routes[].match": ["must be at most maxPromptTokens"],
    }
    assert rules(BUDGET) == {
        ".spec.thresholds": ["percents must be strictly ascending"],
        ".spec.thresholds[]": ["downgrade needs downgradeTo", "only a downgrade takes downgradeTo"],
    }


@pytest.mark.parametrize("schema", [POLICY, BUDGET], ids=["policy", "budget"])
def test_lists_under_or_inside_cel_rules_are_bounded(schema: dict[str, Any]) -> None:
    ruled = list(rules(schema))
    for path, node in nodes(schema):
        if node["type"] == "array" and any(r.startswith(path) for r in ruled):
            assert node.get("maxItems"), f"{path} needs maxItems: a rule below or on it"
    if schema is POLICY:  # the route rule iterates over targets
        assert at(POLICY, ".spec.routes[].targets")["maxItems"] == v1alpha1.MAX_TARGETS


def shown(resource: crdgen.Resource) -> list[str]:
    """The columns of `kubectl get` without `-o wide`."""
    return [c.name for c in resource.columns if c.priority == 0]


def test_printer_columns_name_fields_of_the_schema() -> None:
    policy, budget = crdgen.RESOURCES
    assert shown(policy) == ["Routes", "Ready", "Unmetered", "Age"]
    assert shown(budget) == ["Feature", "Spent", "Limit", "Percent", "State", "Age"]
    kinds = {"date": "string", "integer": "integer", "number": "number", "string": "string"}
    for resource in crdgen.RESOURCES:
        schema = crdgen.structural_schema(resource.model)
        for column in resource.columns:
            if column.json_path.startswith(".metadata."):
                continue
            path = re.sub(r"\[[^\]]*\]", "[]", column.json_path)  # [?(@.type=="Ready")] -> []
            assert at(schema, path)["type"] == kinds[column.type], column.name


def test_crd_names_scope_and_status_subresource() -> None:
    crd = crdgen.crd(crdgen.RESOURCES[0])
    assert crd["metadata"]["name"] == "routingpolicies.switchboard.dev"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("switchboard.dev", "Namespaced")
    assert spec["names"]["shortNames"] == ["rp"]
    assert spec["names"]["singular"] == "routingpolicy"
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


class Odd(BaseModel):
    tags: set[str] = Field(description="uniqueItems has no structural form")


class Either(BaseModel):
    value: int | str = Field(description="a union of two types has none either")


class NullMeansSomething(BaseModel):
    limit: int | None = Field(default=5, description="null and absent would differ")


@pytest.mark.parametrize(
    ("model", "error"),
    [
        (Odd, "no structural form for 'uniqueItems'"),
        (Either, "no structural form for anyOf"),
        (NullMeansSomething, "needs nullable"),
    ],
)
def test_schema_without_structural_form_is_refused(model: type[BaseModel], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        crdgen.structural_schema(create_model("Resource", spec=(model, ...)))


def test_main_writes_then_check_passes_and_catches_drift(tmp_path: Path) -> None:
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "switchboard.dev_featurebudgets.yaml"
    stale.write_text(stale.read_text().replace("Feature", "Featur"))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
