from __future__ import annotations

import pytest

from switchboard.api.v1alpha1 import CircuitBreaker
from switchboard.routing.breaker import (
    TargetHealth,
    after_failure,
    after_rate_limit,
    after_success,
    breaker_state,
    ewma,
    is_available,
)

SETTINGS = CircuitBreaker(failure_threshold=3, cooldown_seconds=30)


def failures(count: int, now: float, h: TargetHealth | None = None) -> TargetHealth:
    h = h or TargetHealth()
    for _ in range(count):
        h = after_failure(h, now, SETTINGS)
    return h


# breaker


def test_new_target_is_closed_and_available() -> None:
    assert breaker_state(TargetHealth(), 0.0) == "closed"
    assert is_available(TargetHealth(), 0.0)


def test_failures_below_threshold_stay_closed() -> None:
    h = failures(2, now=100.0)
    assert h.consecutive_failures == 2
    assert breaker_state(h, 100.0) == "closed"
    assert is_available(h, 100.0)


def test_failure_reaching_threshold_opens_for_cooldown() -> None:
    h = failures(3, now=100.0)
    assert h.open_until == 130.0
    assert breaker_state(h, 100.0) == "open"
    assert breaker_state(h, 129.9) == "open"
    assert not is_available(h, 129.9)


def test_cooldown_elapsed_is_half_open_and_available() -> None:
    h = failures(3, now=100.0)
    assert breaker_state(h, 130.0) == "half_open"
    assert is_available(h, 130.0)


def test_failure_while_half_open_reopens_at_once() -> None:
    h = after_failure(failures(3, now=100.0), 140.0, SETTINGS)
    assert breaker_state(h, 140.0) == "open"
    assert h.open_until == 170.0


def test_failure_while_half_open_after_success_needs_threshold_again() -> None:
    h = after_success(failures(3, now=100.0))
    h = after_failure(h, 140.0, SETTINGS)
    assert breaker_state(h, 140.0) == "closed"


def test_success_while_half_open_closes() -> None:
    h = after_success(failures(3, now=100.0))
    assert h == TargetHealth()
    assert breaker_state(h, 130.0) == "closed"


def test_success_resets_failure_count() -> None:
    h = failures(2, now=100.0, h=after_success(failures(2, now=100.0)))
    assert h.consecutive_failures == 2
    assert breaker_state(h, 100.0) == "closed"


def test_failure_while_open_keeps_cooldown_end() -> None:
    h = after_failure(failures(3, now=100.0), 110.0, SETTINGS)
    assert h.consecutive_failures == 4
    assert h.open_until == 130.0


def test_threshold_of_one_opens_on_first_failure() -> None:
    h = after_failure(TargetHealth(), 5.0, CircuitBreaker(failure_threshold=1, cooldown_seconds=2))
    assert breaker_state(h, 6.9) == "open"
    assert breaker_state(h, 7.0) == "half_open"


def test_transitions_leave_the_input_unchanged() -> None:
    h = TargetHealth()
    after_failure(h, 1.0, SETTINGS)
    after_rate_limit(h, 1.0, 5.0)
    assert h == TargetHealth()


# rate limits


def test_rate_limit_rests_until_retry_after() -> None:
    h = after_rate_limit(TargetHealth(), 100.0, 12.0)
    assert h.resting_until == 112.0
    assert breaker_state(h, 111.9) == "resting"
    assert not is_available(h, 111.9)
    assert breaker_state(h, 112.0) == "closed"
    assert is_available(h, 112.0)


def test_rate_limit_without_retry_after_rests_default() -> None:
    assert after_rate_limit(TargetHealth(), 100.0, None).resting_until == 101.0
    assert after_rate_limit(TargetHealth(), 100.0, None, default_rest=5.0).resting_until == 105.0


def test_rate_limit_with_negative_retry_after_does_not_rest() -> None:
    h = after_rate_limit(TargetHealth(), 100.0, -3.0)
    assert breaker_state(h, 100.0) == "closed"


def test_rate_limit_is_not_a_breaker_failure() -> None:
    h = failures(2, now=100.0)
    for _ in range(5):
        h = after_rate_limit(h, 100.0, 1.0)
    assert h.consecutive_failures == 2
    assert h.open_until == 0.0
    assert breaker_state(h, 101.0) == "closed"


def test_rate_limit_keeps_a_longer_rest() -> None:
    h = after_rate_limit(after_rate_limit(TargetHealth(), 100.0, 60.0), 110.0, 5.0)
    assert h.resting_until == 160.0


def test_success_keeps_a_running_rest() -> None:
    h = after_success(after_rate_limit(TargetHealth(), 100.0, 10.0))
    assert breaker_state(h, 105.0) == "resting"


def test_open_and_resting_reports_open() -> None:
    h = after_rate_limit(failures(3, now=100.0), 100.0, 60.0)
    assert breaker_state(h, 110.0) == "open"
    assert breaker_state(h, 140.0) == "resting"
    assert breaker_state(h, 160.0) == "half_open"


# latency


def test_ewma_first_sample_stands_alone() -> None:
    assert ewma(None, 0.8) == 0.8


def test_ewma_blends_sample_into_previous() -> None:
    assert ewma(1.0, 2.0) == pytest.approx(1.3)
    assert ewma(1.0, 2.0, alpha=0.5) == pytest.approx(1.5)
