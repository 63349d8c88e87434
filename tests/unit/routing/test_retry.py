"""Retrying one target: exponential backoff with jitter, capped; which errors allow a retry."""

from __future__ import annotations

import random

import pytest

from switchboard.api.v1alpha1 import Retry
from switchboard.providers.openai_compat import ErrorKind, UpstreamError
from switchboard.routing.retry import backoff_seconds, retry_allowed

RETRY = Retry(attempts=5, backoff_ms=200, max_backoff_ms=1000)


class Fixed(random.Random):
    """An rng whose `random()` always returns `value`."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("attempt", "step"), [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)])
def test_backoff_doubles_up_to_the_ceiling(attempt: int, step: float) -> None:
    assert backoff_seconds(RETRY, attempt, Fixed(0.0)) == pytest.approx(step / 2)
    assert backoff_seconds(RETRY, attempt, Fixed(1.0)) == pytest.approx(step)


def test_backoff_jitter_stays_between_half_and_all_of_the_step() -> None:
    rng = random.Random(7)
    delays = [backoff_seconds(RETRY, 2, rng) for _ in range(200)]
    assert all(0.2 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 100


def test_zero_backoff_retries_at_once() -> None:
    assert backoff_seconds(Retry(backoff_ms=0), 3, random.Random(1)) == 0.0


@pytest.mark.parametrize(
    ("kind", "retryable", "allowed"),
    [
        ("server", True, True),
        ("timeout", True, True),
        ("connect", True, True),
        ("bad_response", True, True),
        ("rate_limited", True, False),
        ("auth", False, False),
        ("client", False, False),
    ],
)
def test_retry_allowed_for_retryable_errors_except_rate_limits(
    kind: ErrorKind, retryable: bool, allowed: bool
) -> None:
    assert retry_allowed(UpstreamError(kind, 500, retryable, None, "x")) is allowed
