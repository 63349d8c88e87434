"""Edge: one POST of an alert to a Slack-compatible incoming webhook.

The webhook URL embeds a token, so it never appears in what this module returns or logs: a
failure is described by the HTTP status or the exception's type only.
"""

from __future__ import annotations

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10)


def slack_payload(text: str) -> dict[str, str]:
    """The body Slack (and Mattermost, Rocket.Chat, ...) incoming webhooks accept."""
    return {"text": text}


class Slack:
    """Posts messages with a shared `aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(self, url: str, text: str) -> str | None:
        """None when the webhook accepted `text` (2xx); otherwise why not, without the URL."""
        try:
            async with self._session.post(url, json=slack_payload(text), timeout=TIMEOUT) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"the webhook answered HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return f"the webhook could not be reached ({type(exc).__name__})"
