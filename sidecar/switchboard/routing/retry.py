"""Pure: retrying one target — the backoff before each retry and whether an error allows one.

A retry goes to the same target after exponential backoff with jitter (half to all of the
step, capped by `maxBackoffMs`). Errors that are not retryable, and rate limits (the target
rests; the next target is tried at once), move on without a retry.
"""

from __future__ import annotations

import random

from switchboard.api.v1alpha1 import Retry
from switchboard.providers.openai_compat import UpstreamError


def backoff_seconds(retry: Retry, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1-based)."""
    step: float = min(retry.max_backoff_ms, retry.backoff_ms * 2 ** (attempt - 1)) / 1000
    return step * (0.5 + rng.random() / 2)


def retry_allowed(error: UpstreamError) -> bool:
    """Whether the same target may be tried again after `error`."""
    return error.retryable and error.kind != "rate_limited"
