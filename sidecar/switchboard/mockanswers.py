"""Pure: what the mock OpenAI-compatible provider answers, which faults it injects, what it bills.

Owns the fault rules, the mock's counters and request log (`MockState`), and the bytes of
every answer; `mockprovider` is the aiohttp edge that serves them. Answers are deterministic
(wall-clock `created` values are parameters):

- prompt_tokens = 3 + sum over messages of (ceil(characters of the content / 4) + 4);
- completion_tokens = max_completion_tokens or max_tokens if given, else 16;
- the answer is completion_tokens times "tok ", unless the last user message contains
  `[[json]]` (answer `{"ok": true}`), `[[refuse]]` (a refusal sentence) or `[[empty]]` ("");
  usage is the same in those cases. A stream sends one content delta per completion token
  (a special answer is spread over those deltas, so some may be empty);
- embeddings are 8 floats derived from a hash of each input, ceil(characters / 4) tokens per
  string input and one per token of a token-array input.

Billing rule (`/_mock/stats`): a request is billed only for what reached the client.
A complete answer bills prompt + completion tokens; a stream bills the prompt once its first
body byte is written plus one output token per content delta written, so a stream cut
mid-way bills the prompt plus the tokens already sent. Error statuses, `hang`, `reset`,
`bad_json`, `cut_before_first_byte` and cut non-streaming bodies bill nothing; only complete
200 answers count as `served`.

Fault rules (`{"rules": [...]}`): the first rule whose `model` glob matches and whose `times`
is not used up applies to a request (and uses one up); `times` null means forever.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import math
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

Json = dict[str, Any]
FAULTS = frozenset(
    {"ok", "429", "500", "503", "401", "400", "hang", "reset", "slow"}
    | {"cut_before_first_byte", "cut_after", "bad_json"}
)
CUTS = frozenset({"cut_before_first_byte", "cut_after"})
RULE_KEYS = frozenset({"fault", "times", "model", "retry_after", "delay_ms", "after_chunks"})
# fault -> (status, error type, error code, message)
ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "400": (400, "invalid_request_error", None, "Invalid request (injected fault)."),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "429": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached (mock)."),
    "500": (500, "server_error", None, "The server had an error processing your request."),
    "503": (503, "server_error", None, "The server is overloaded or not ready yet."),
}
SLOW_DEFAULT_MS = 200.0
DEFAULT_COMPLETION_TOKENS = 16
EMBEDDING_DIMENSIONS = 8
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
REFUSAL = "I'm sorry, but I can't help with that."
BAD_JSON = b'{"id": "chatcmpl-broken", "object": '
DONE = b"data: [DONE]\n\n"


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# ---- faults ----------------------------------------------------------------------------------


@dataclass
class Rule:
    """One fault rule; `times` None means forever."""

    fault: str
    times: int | None = None
    model: str | None = None
    retry_after: float | None = None
    delay_ms: float | None = None
    after_chunks: int = 3

    def matches(self, model: str | None) -> bool:
        if self.times == 0:
            return False
        return self.model is None or (model is not None and fnmatch.fnmatchcase(model, self.model))

    @property
    def delay_s(self) -> float:
        if self.delay_ms is not None:
            return self.delay_ms / 1000
        return SLOW_DEFAULT_MS / 1000 if self.fault == "slow" else 0.0


NO_FAULT = Rule("ok")


def parse_rules(doc: object) -> list[Rule]:
    """`{"rules": [...]}` -> rules; raises ValueError on any unexpected shape."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ValueError('expected {"rules": [...]}')
    return [_parse_rule(item) for item in doc["rules"]]


def _parse_rule(item: object) -> Rule:
    if not isinstance(item, dict) or item.get("fault") not in FAULTS:
        raise ValueError(f"each rule needs a fault among {sorted(FAULTS)}")
    if unknown := set(item) - RULE_KEYS:
        raise ValueError(f"unknown rule keys: {sorted(unknown)}")
    rule = Rule(**item)
    if rule.times is not None and not (is_int(rule.times) and rule.times >= 0):
        raise ValueError("times must be a non-negative integer or null")
    if rule.model is not None and not isinstance(rule.model, str):
        raise ValueError("model must be a glob string")
    for number in (rule.retry_after, rule.delay_ms):
        if number is not None and not (isinstance(number, int | float) and number >= 0):
            raise ValueError("retry_after and delay_ms must be non-negative numbers")
    if not (is_int(rule.after_chunks) and rule.after_chunks >= 0):
        raise ValueError("after_chunks must be a non-negative integer")
    return rule


# ---- state -----------------------------------------------------------------------------------


@dataclass
class ModelStats:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class MockState:
    """One mock's settings, fault rules, counters and its last 200 requests."""

    name: str
    api_key: str | None
    latency_s: float
    chunk_delay_s: float
    rules: list[Rule] = field(default_factory=list)
    requests: int = 0
    served: int = 0
    by_model: dict[str, ModelStats] = field(default_factory=dict)
    log: deque[Json] = field(default_factory=lambda: deque(maxlen=200))
    seq: int = 0

    def take_rule(self, model: str | None) -> Rule:
        for rule in self.rules:
            if rule.matches(model):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return NO_FAULT

    def model_stats(self, model: str) -> ModelStats:
        if model not in self.by_model:
            self.by_model[model] = ModelStats()
        return self.by_model[model]

    def bill(self, model: str, input_tokens: int, output_tokens: int) -> None:
        stats = self.model_stats(model)
        stats.input_tokens += input_tokens
        stats.output_tokens += output_tokens

    def next_id(self) -> str:
        self.seq += 1
        return f"chatcmpl-{self.name}-{self.seq}"

    def reset(self) -> None:
        self.rules.clear()
        self.requests = self.served = 0
        self.by_model.clear()
        self.log.clear()


# ---- deterministic answers ------------------------------------------------------------------


def text_of(content: object) -> str:
    """Message content (a string, a list of parts with "text", or null) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _get(message: object, key: str) -> object:
    return message.get(key) if isinstance(message, dict) else None


def prompt_tokens_of(messages: list[object]) -> int:
    return 3 + sum(math.ceil(len(text_of(_get(m, "content"))) / 4) + 4 for m in messages)


def completion_tokens_of(body: Json) -> int:
    """`max_completion_tokens`, else `max_tokens`, else the default (16)."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return max_tokens if is_int(max_tokens) else DEFAULT_COMPLETION_TOKENS


def answer_pieces(messages: list[object], completion_tokens: int) -> list[str]:
    """The answer as exactly `completion_tokens` pieces (one per streamed content delta)."""
    users = [m for m in messages if _get(m, "role") == "user"]
    last_user = text_of(_get(users[-1], "content")) if users else ""
    if "[[json]]" in last_user:
        return _spread('{"ok": true}', completion_tokens)
    if "[[refuse]]" in last_user:
        return _spread(REFUSAL, completion_tokens)
    if "[[empty]]" in last_user:
        return [""] * completion_tokens
    return ["tok "] * completion_tokens


def _spread(text: str, n: int) -> list[str]:
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]


def embedding_of(item: str | list[int]) -> list[float]:
    """A deterministic vector of dimension 8; its values are exact in float32."""
    digest = hashlib.blake2b(orjson.dumps(item), digest_size=EMBEDDING_DIMENSIONS).digest()
    return [(b - 128) / 128 for b in digest]


def _base64_of(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_inputs(raw: object) -> list[str | list[int]] | None:
    """The inputs of an embeddings request (a string, strings or token arrays); None if bad."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(i, str) for i in raw) or all(
        isinstance(i, list) and all(is_int(t) for t in i) for i in raw
    ):
        return list(raw)
    return [raw] if all(is_int(i) for i in raw) else None


def embedding_tokens(items: list[str | list[int]]) -> int:
    return sum(math.ceil(len(i) / 4) if isinstance(i, str) else len(i) for i in items)


def usage_of(prompt: int, completion: int) -> Json:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


# ---- answer bodies ---------------------------------------------------------------------------


def error_doc(message: str, type_: str, code: str | None = None) -> Json:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def chat_completion(
    completion_id: str, created: int, model: str, prompt: int, completion: int, pieces: list[str]
) -> bytes:
    """A `chat.completion` answer whose content is the pieces joined."""
    message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [choice],
            "usage": usage_of(prompt, completion),
        }
    )


@dataclass(frozen=True, slots=True)
class ChatStream:
    """The SSE events of a streamed answer: the role chunk, one chunk per piece, and the tail
    (finish chunk, the usage chunk when asked for, `[DONE]`)."""

    head: bytes
    deltas: list[bytes]
    tail: bytes


def chat_stream(
    completion_id: str,
    created: int,
    model: str,
    prompt: int,
    pieces: list[str],
    include_usage: bool,
) -> ChatStream:
    base: Json = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_mock",
    }
    if include_usage:
        base["usage"] = None
    events: dict[str, bytes] = {}  # equal pieces share one encoded event

    def event(delta: Json, finish: str | None = None, key: str | None = None) -> bytes:
        if key is not None and key in events:
            return events[key]
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
        if key is not None:
            events[key] = data
        return data

    head = event({"role": "assistant", "content": "", "refusal": None})
    deltas = [event({"content": piece}, key=piece) for piece in pieces]
    tail = event({}, "stop")
    if include_usage:
        usage = {**base, "choices": [], "usage": usage_of(prompt, len(pieces))}
        tail += b"data: " + orjson.dumps(usage) + b"\n\n"
    return ChatStream(head, deltas, tail + DONE)


def embeddings_list(
    model: str, items: list[str | list[int]], tokens: int, *, as_base64: bool
) -> bytes:
    """The embeddings answer: one vector per input, as floats or base64 float32."""
    data = []
    for index, item in enumerate(items):
        vector = embedding_of(item)
        embedding = _base64_of(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def models_list(owner: str, created: int) -> bytes:
    data = [{"id": m, "object": "model", "created": created, "owned_by": owner} for m in MODELS]
    return orjson.dumps({"object": "list", "data": data})
