"""slack: the payload, and a failure that never shows the (secret) webhook URL."""

from __future__ import annotations

import aiohttp

from switchboard.operator.slack import Slack, slack_payload


def test_payload_is_slack_text() -> None:
    assert slack_payload("over 80%") == {"text": "over 80%"}


async def test_an_unusable_url_is_reported_without_the_url() -> None:
    async with aiohttp.ClientSession() as session:
        error = await Slack(session).post("hooks.example/T000/SECRET-TOKEN", "hi")
    assert error is not None and error.startswith("the webhook could not be reached (")
    assert "SECRET-TOKEN" not in error
