"""Pure: the CustomResourceDefinitions in `crds/`, generated from the pydantic models in `api/`.

pydantic's JSON schema becomes a Kubernetes *structural* schema: `$ref`s inlined, `anyOf` with
null folded into the type, Decimal money as `number`, `const` as `enum`, `title` dropped, model
defaults (`default: {}`) so the API server fills nested defaults. Rules across fields come from
the models (`x-kubernetes-validations`). Only `main` at the bottom touches files: it is the edge
behind `make crds` and `python -m switchboard.crdgen [--check] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from switchboard.api.v1alpha1 import FeatureBudget, RoutingPolicy

GROUP = "switchboard.dev"
VERSION = "v1alpha1"
HEADER = (
    "# Generated from sidecar/switchboard/api/v1alpha1.py by `make crds`"
    " (python -m switchboard.crdgen). Do not edit.\n"
)

# Keys of pydantic's output that carry over unchanged; anything else not handled is an error,
# so that a new pydantic feature cannot slip a non-structural key into a CRD.
_KEPT = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "x-kubernetes-validations",
}
_DROPPED = {"title", "$defs"}


@dataclass(frozen=True)
class Column:
    """One `kubectl get` column (additionalPrinterColumns)."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0


@dataclass(frozen=True)
class Resource:
    """A custom resource: its model and how Kubernetes names and prints it."""

    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def kind(self) -> str:
        return self.model.__name__

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


AGE = Column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")
RESOURCES = (
    Resource(
        RoutingPolicy,
        "routingpolicies",
        ("rp",),
        (
            Column("Routes", "integer", ".status.routes", "Number of routes in force."),
            Column(
                "Ready",
                "string",
                '.status.conditions[?(@.type=="Ready")].status',
                "Whether the policy is rendered into a ConfigMap.",
            ),
            Column(
                "Reason",
                "string",
                '.status.conditions[?(@.type=="Ready")].reason',
                "Why it is (not) ready.",
                priority=1,
            ),
            Column("ConfigMap", "string", ".status.configMap", "Rendered config.", priority=1),
            Column(
                "Unmetered",
                "integer",
                ".status.unmeteredPods",
                "Pods that asked for the sidecar but run without it.",
            ),
            AGE,
        ),
    ),
    Resource(
        FeatureBudget,
        "featurebudgets",
        ("fb",),
        (
            Column("Feature", "string", ".spec.feature", "Feature the budget covers."),
            Column("Team", "string", ".spec.team", "Team owning the feature.", priority=1),
            Column("Period", "string", ".spec.period", "Budget period.", priority=1),
            Column("Spent", "string", ".status.spentUSD", "USD spent in the current period."),
            Column("Limit", "number", ".spec.limitUSD", "Limit in USD per period."),
            Column("Percent", "number", ".status.percentUsed", "Spent, in percent of the limit."),
            Column("State", "string", ".status.state", "Ok, Warning, Downgraded or Blocked."),
            AGE,
        ),
    ),
)


class _FactoryDefaults(GenerateJsonSchema):
    """pydantic leaves `default_factory` defaults out; a nested model's becomes `{}`, so that the
    API server fills in its fields' defaults. Empty lists and maps stay out: they say nothing."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        return {} if isinstance(factory(), BaseModel) else NoDefault  # type: ignore[call-arg]


def _number(value: Any) -> Any:
    """A Decimal default (pydantic writes a string) as a YAML number."""
    if not isinstance(value, str):
        return value
    exact = Decimal(value)
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def _fold(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """`$ref` and `anyOf` replaced by the schema they stand for, the node's own keys on top."""
    node = dict(node)
    while "$ref" in node or "anyOf" in node:
        if "$ref" in node:
            target = defs[node.pop("$ref").removeprefix("#/$defs/")]
            node = {**target, **node}
            continue
        options = node.pop("anyOf")
        branches = [b for b in options if b != {"type": "null"}]
        if len(branches) < len(options) and node.get("default") is not None:
            # The API server prunes a null and then applies the default: null would need
            # `nullable: true` to keep a meaning of its own. No field of the API needs that.
            raise ValueError(f"null differs from absent (needs nullable): {node}")
        types = sorted(b.get("type", "") for b in branches)
        if types == ["number", "string"]:  # Decimal: users write numbers (limitUSD: 500)
            branches = [b for b in branches if b["type"] == "number"]
            if "default" in node:
                node["default"] = _number(node["default"])
        if len(branches) != 1:
            raise ValueError(f"no structural form for anyOf {branches}")
        node = {**branches[0], **node}
    if node.get("default", 0) is None:
        del node["default"]  # absent and null mean the same; the API server prunes nulls
    return node


def _structural(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    node = _fold(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEPT:
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):  # OpenAPI 3.0 spells it so
            out[key.replace("exclusive", "").lower()] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "items" or (key == "additionalProperties" and value is not False):
            out[key] = _structural(value, defs)
        elif key not in _DROPPED and key != "additionalProperties":
            raise ValueError(f"no structural form for {key!r}")
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema of a resource; `metadata` is left to Kubernetes."""
    schema = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    defs = schema.get("$defs", {})
    properties = schema["properties"]
    return {
        "description": schema.get("description", ""),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {"description": "REST resource this object represents.", "type": "string"},
            "metadata": {"type": "object"},
            **{k: _structural(properties[k], defs) for k in ("spec", "status") if k in properties},
        },
    }


def crd(resource: Resource) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            "description": c.description,
            **({"priority": c.priority} if c.priority else {}),
        }
        for c in resource.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": ["switchboard"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": structural_schema(resource.model)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def crd_files() -> dict[str, str]:
    """File name in `crds/` -> its exact text."""
    return {
        r.file_name: HEADER + yaml.safe_dump(crd(r), sort_keys=True, width=100) for r in RESOURCES
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CRDs into `--out`, or with `--check` report (exit 1) those that differ."""
    parser = argparse.ArgumentParser(prog="switchboard crds", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("crds"), help="directory (crds/)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    stale = []
    for name, text in crd_files().items():
        path: Path = args.out / name
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    verb = "out of date (run `make crds`)" if args.check else "written"
    for path in stale:
        print(f"{path}: {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
