"""Pure: the cascade quality gate. Owns whether a cheap model's answer is good enough to keep,
or the `cascade` strategy should escalate to the next target.
"""

from __future__ import annotations

import json

from switchboard.api.v1alpha1 import QualityGate

# Lower-case openings of common English refusals, compared with the start of the answer.
REFUSAL_OPENINGS = (
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i can't",
    "i am sorry, but i cannot",
    "sorry, but i can't",
    "sorry, i can't",
    "i cannot help",
    "i can't help",
    "i cannot assist",
    "i can't assist",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i won't be able to",
    "as an ai",
)


def is_refusal(text: str) -> bool:
    """Whether `text` opens like a refusal (case-insensitive, typographic apostrophes too)."""
    opening = text.strip().replace("\u2019", "'").casefold()
    return opening.startswith(REFUSAL_OPENINGS)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def quality_failure(text: str, gate: QualityGate, wants_json: bool) -> str | None:
    """None when the answer passes `gate`; else why not: "empty", "too short", "refusal" or
    "invalid JSON". `gate.require_json` None follows `wants_json` (the request's
    response_format asked for JSON)."""
    answer = text.strip()
    if not answer and gate.min_length > 0:
        return "empty"
    if len(answer) < gate.min_length:
        return "too short"
    if gate.reject_refusals and is_refusal(answer):
        return "refusal"
    require_json = wants_json if gate.require_json is None else gate.require_json
    if require_json and not _is_json(answer):
        return "invalid JSON"
    return None
