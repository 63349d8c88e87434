"""Pure: is a request body from the application a well-formed OpenAI API request?

Only what the sidecar relies on is checked; everything else is the provider's to judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Endpoint = Literal["chat", "embeddings"]

# Deepest nesting of arrays and objects accepted. orjson parses 1024 levels but serialises only
# 254, and the sidecar re-serialises every body (upstream request, cache key): deeper bodies
# would fail inside the pipeline. Real requests (tool schemas included) stay far below this.
MAX_NESTING = 128
_CONTAINERS = frozenset({dict, list})


@dataclass(frozen=True, slots=True)
class RequestProblem:
    param: str | None
    message: str


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def nesting_exceeds(value: object, limit: int) -> bool:
    """Whether a parsed JSON value nests arrays and objects more than `limit` levels deep."""
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(limit):
        deeper: list[object] = []
        for container in level:
            items = _children(container)
            if not _CONTAINERS.isdisjoint(map(type, items)):  # skips flat arrays quickly
                deeper += (item for item in items if type(item) in _CONTAINERS)
        if not deeper:
            return False
        level = deeper
    return bool(level)


def _children(container: object) -> Iterable[object]:
    if isinstance(container, dict):
        return container.values()
    return container if isinstance(container, list) else ()


def request_problem(
    endpoint: Endpoint, body: object, raw: bytes | None = None
) -> RequestProblem | None:
    """The first thing wrong with `body`, or None. `raw`, the JSON `body` was parsed from, when
    known: a body with no more than `MAX_NESTING` opening brackets in all cannot nest deeper,
    and is then not walked."""
    problem = _field_problem(endpoint, body)
    if problem is not None:
        return problem
    if raw is not None and raw.count(b"{") + raw.count(b"[") <= MAX_NESTING:
        return None
    if nesting_exceeds(body, MAX_NESTING):
        return RequestProblem(None, f"the request body nests more than {MAX_NESTING} levels deep")
    return None


def _field_problem(endpoint: Endpoint, body: object) -> RequestProblem | None:
    if not isinstance(body, Mapping):
        return RequestProblem(None, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return RequestProblem("model", "'model' must be a non-empty string")
    if endpoint == "embeddings":
        value = body.get("input")
        if isinstance(value, str) and value:
            return None
        if isinstance(value, list) and value:
            return None
        return RequestProblem("input", "'input' must be a non-empty string or array")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return RequestProblem("messages", "'messages' must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            return RequestProblem(f"messages[{i}]", "each message must be an object with a role")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        return RequestProblem("stream", "'stream' must be a boolean")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        return RequestProblem("stream_options", "'stream_options' must be an object")
    for param in ("max_tokens", "max_completion_tokens"):
        if body.get(param) is not None and not _positive_int(body[param]):
            return RequestProblem(param, f"'{param}' must be a positive integer")
    n = body.get("n")
    if n is not None and not _positive_int(n):
        return RequestProblem("n", "'n' must be a positive integer")
    return None


def client_wants_usage(body: Mapping[str, object]) -> bool:
    """Did a streaming client ask for the usage chunk itself?"""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True
