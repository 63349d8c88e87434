"""The GenAI message attributes a policy may opt into (`telemetry.captureContent`)."""

from __future__ import annotations

import json

from switchboard.telemetry.spans import input_messages, output_messages


def test_input_messages_are_role_and_text_parts() -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    assert json.loads(input_messages(messages)) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
        {
            "role": "user",
            "parts": [{"type": "text", "content": "What is this?"}, {"type": "image_url"}],
        },
        {"role": "assistant", "parts": []},
    ]


def test_input_messages_skip_what_is_not_a_message() -> None:
    assert json.loads(input_messages(["junk", 3, {"role": "user", "content": "hi"}])) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert input_messages("not a list") == "[]"


def test_output_messages_carry_the_finish_reason_when_known() -> None:
    assert json.loads(output_messages("Hello.", "stop")) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello."}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(output_messages("Hel", None)) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hel"}]}
    ]
