"""Pure: keep credentials and content out of logs, spans and errors."""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEYLIKE = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|\b(sk|pk|rk|gsk|xai|key)[-_][A-Za-z0-9_-]{8,}"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and anything shaped like an API key replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return _KEYLIKE.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)
