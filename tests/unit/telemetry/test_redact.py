"""`redact` removes known secrets and anything shaped like an API key or bearer token, and leaves
ordinary text alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.telemetry.redact import redact

KEY_CHARS = st.characters(categories=["Lu", "Ll", "Nd"], max_codepoint=127)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk-abc.def/ghi=", "Authorization: Bearer [REDACTED]"),
        ("bearer   opaque~token+1", "bearer   [REDACTED]"),
        ("key sk-proj-1234567890abcdef rejected", "key [REDACTED] rejected"),
        ("groq gsk_ABCDEFGH1234 here", "groq [REDACTED] here"),
        ("xai-12345678", "[REDACTED]"),
        ("pk_live_12345678 and rk-test_abcdefgh", "[REDACTED] and [REDACTED]"),
        ("KEY-ABCDEFGH12", "[REDACTED]"),
    ],
)
def test_keylike_tokens_are_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Rate limit reached for gpt-4o-mini in organization org-1 on tokens per min.",
        "risk-assessment-report and task_identifier_x are words, not keys",
        "sk-short",
        "a key-value store",
        "Bearer",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_known_secrets_are_replaced_even_when_not_keylike() -> None:
    assert redact("pass hunter2, then hunter2!", ["hunter2"]) == "pass [REDACTED], then [REDACTED]!"


def test_empty_secret_is_ignored() -> None:
    assert redact("nothing to hide", ["", "absent"]) == "nothing to hide"


def test_every_known_secret_is_replaced() -> None:
    text = redact("a=alpha-secret b=beta c=alpha", ["alpha-secret", "beta", "alpha"])
    assert text == "a=[REDACTED] b=[REDACTED] c=[REDACTED]"


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    secret=st.text(KEY_CHARS, min_size=8, max_size=40).filter(lambda s: s not in "[REDACTED]"),
)
def test_a_known_secret_never_survives(before: str, after: str, secret: str) -> None:
    assert secret not in redact(before + secret + after + secret, [secret])


@given(
    before=st.text(max_size=40),
    prefix=st.sampled_from(["sk-", "sk_", "gsk_", "xai-", "pk_", "rk-", "sk-proj-"]),
    body=st.text(KEY_CHARS, min_size=8, max_size=60),
)
def test_a_keylike_token_never_survives_after_a_space(before: str, prefix: str, body: str) -> None:
    token = prefix + body
    assert token not in redact(f"{before} {token} end")


@given(st.text(max_size=200))
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
