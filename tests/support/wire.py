"""What a sidecar answers, read the way a test needs it: raw HTTP (SSE comments and all, which
the SDK hides), Prometheus samples, `/debug/targets`, and the exact Decimal price of a usage.

    reply = post_json(sidecar.base, "/v1/chat/completions", {...}, {"X-Switchboard-Task": "x"})
    assert reply.cost_comment() == price(usage, "0.15", "0.6")
    assert metric(sidecar.base, "switchboard_failovers_total", model="p-500") == 1

Standard library and prometheus_client only.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

COST_COMMENT = ": x-switchboard-cost-usd="
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class RawResponse:
    """A whole HTTP answer; header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[str]:
        return self.body.decode().splitlines()

    def sse_data(self) -> list[str]:
        """The `data:` payloads of an SSE body, in order (`[DONE]` included)."""
        return [line[len("data:") :].strip() for line in self.lines() if line.startswith("data:")]

    def sse_chunks(self) -> list[dict[str, Any]]:
        """The JSON `data:` payloads (everything but `[DONE]`)."""
        return [json.loads(d) for d in self.sse_data() if d != "[DONE]"]

    def cost_comment(self) -> Decimal | None:
        """The amount of the `: x-switchboard-cost-usd=` comment, if the stream carried one."""
        found = [line for line in self.lines() if line.startswith(COST_COMMENT)]
        assert len(found) <= 1, found
        return Decimal(found[0][len(COST_COMMENT) :]) if found else None


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """One HTTP request to `base` (http://host:port), read to the end."""
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        return RawResponse(response.status, found, data)
    finally:
        conn.close()


def post_json(
    base: str, path: str, doc: object, headers: Mapping[str, str] | None = None
) -> RawResponse:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return request(base, "POST", path, json.dumps(doc).encode(), all_headers)


def metric(base: str, sample: str, **labels: str) -> float:
    """The sum of the `/metrics` samples named `sample` whose labels include `labels`
    (0.0 when there is none)."""
    text = request(base, "GET", "/metrics").body.decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def debug_targets(base: str) -> dict[str, dict[str, Any]]:
    """`GET /debug/targets`, keyed by model name."""
    doc = request(base, "GET", "/debug/targets").json()
    return {t["model"]: t for t in doc["targets"]}


def price(
    input_tokens: int, output_tokens: int, input_per_mtok: str, output_per_mtok: str
) -> Decimal:
    """The exact cost of a call at the given USD per million tokens."""
    total = input_tokens * Decimal(input_per_mtok) + output_tokens * Decimal(output_per_mtok)
    return total / MILLION


def price_field(input_per_mtok: str, output_per_mtok: str) -> dict[str, float]:
    """A model's `price` in a policy manifest (YAML numbers, as a user writes them)."""
    return {"inputPerMTok": float(input_per_mtok), "outputPerMTok": float(output_per_mtok)}


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0, interval: float = 0.02) -> None:
    """Poll `predicate` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
