"""Pure: is a request body from the application a well-formed OpenAI API request?

Only what the sidecar relies on is checked; everything else is the provider's to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class RequestProblem:
    param: str | None
    message: str


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def request_problem(endpoint: Endpoint, body: object) -> RequestProblem | None:
    """The first thing wrong with `body`, or None."""
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
    if "stream" in body and not isinstance(body["stream"], bool):
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
