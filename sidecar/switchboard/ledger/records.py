"""Pure: a `SpendRecord` as one line of JSON (the outbox format) and back.

Cost travels as a decimal string, so it comes back as the same `Decimal`; times as ISO 8601.
A line of a newer format version, or a damaged one, is refused with `ValueError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

import orjson

from switchboard.ledger.base import SpendRecord
from switchboard.pricing.cost import Usage

FORMAT_VERSION = 1
_TEXT_FIELDS = ("id", "namespace", "feature", "team", "provider", "model", "route")
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens")


def record_line(record: SpendRecord) -> bytes:
    """`record` as one line of JSON, without the newline (orjson writes `at` as isoformat)."""
    usage = record.usage
    return orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "id": record.id,
            "namespace": record.namespace,
            "feature": record.feature,
            "team": record.team,
            "provider": record.provider,
            "model": record.model,
            "route": record.route,
            "at": record.at,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cost": str(record.cost),
            "estimated": record.estimated,
        }
    )


def _text(doc: Mapping[str, object], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string")
    return value


def _count(doc: Mapping[str, object], name: str) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: expected a whole number >= 0")
    return value


def record_of_line(line: str) -> SpendRecord:
    """The record a line of `record_line` holds; `ValueError` when it holds none."""
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown format version {doc.get('v')!r}")
    text = {name: _text(doc, name) for name in _TEXT_FIELDS}
    try:
        cost = Decimal(_text(doc, "cost"))
    except InvalidOperation as exc:
        raise ValueError("cost: expected a decimal number") from exc
    if not cost.is_finite():
        raise ValueError("cost: expected a finite amount")
    estimated = doc.get("estimated", False)
    if not isinstance(estimated, bool):
        raise ValueError("estimated: expected true or false")
    return SpendRecord(
        id=text["id"],
        at=datetime.fromisoformat(_text(doc, "at")),
        namespace=text["namespace"],
        feature=text["feature"],
        team=text["team"],
        provider=text["provider"],
        model=text["model"],
        route=text["route"],
        usage=Usage(*(_count(doc, name) for name in _TOKEN_FIELDS)),
        cost=cost,
        estimated=estimated,
    )
