from __future__ import annotations

import pytest

from switchboard.api.v1alpha1 import QualityGate
from switchboard.routing.quality import quality_failure

GATE = QualityGate()


def test_plain_answer_passes() -> None:
    assert quality_failure("Category: billing", GATE, wants_json=False) is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_answer_is_empty(text: str) -> None:
    assert quality_failure(text, GATE, wants_json=False) == "empty"


def test_answer_under_min_length_is_too_short() -> None:
    gate = QualityGate(min_length=10)
    assert quality_failure("  billing  ", gate, wants_json=False) == "too short"
    assert quality_failure("billing ok", gate, wants_json=False) is None


def test_zero_min_length_accepts_blank_answer() -> None:
    assert quality_failure("", QualityGate(min_length=0), wants_json=False) is None


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "i'm SORRY, BUT I CAN'T do this",
        "I\u2019m sorry, but I can\u2019t share that.",
        "  \nI cannot help with this request.",
        "I can't assist with that.",
        "As an AI language model, I have no opinion.",
        "I'm unable to comply.",
    ],
)
def test_refusal_opening_is_refusal(text: str) -> None:
    assert quality_failure(text, GATE, wants_json=False) == "refusal"


def test_refusal_words_later_in_answer_pass() -> None:
    text = "The customer wrote: I'm sorry, but I can't pay. Category: billing"
    assert quality_failure(text, GATE, wants_json=False) is None


def test_refusal_passes_when_gate_allows_refusals() -> None:
    gate = QualityGate(reject_refusals=False)
    assert quality_failure("I cannot help with that.", gate, wants_json=False) is None


def test_json_asked_and_valid_passes() -> None:
    assert quality_failure(' {"category": "billing"} ', GATE, wants_json=True) is None


@pytest.mark.parametrize("text", ['{"category": "billing"', "Sure! {}", "```json\n{}\n```"])
def test_json_asked_and_invalid_is_invalid_json(text: str) -> None:
    assert quality_failure(text, GATE, wants_json=True) == "invalid JSON"


def test_json_not_asked_accepts_prose() -> None:
    assert quality_failure("billing", GATE, wants_json=False) is None


def test_gate_requiring_json_overrides_request() -> None:
    gate = QualityGate(require_json=True)
    assert quality_failure("billing", gate, wants_json=False) == "invalid JSON"


def test_gate_not_requiring_json_overrides_request() -> None:
    gate = QualityGate(require_json=False)
    assert quality_failure("billing", gate, wants_json=True) is None
