"""Pure: per-target health as immutable values with pure transitions.

Owns the circuit breaker (closed -> open after `failure_threshold` failures in a row ->
half_open after `cooldown_seconds` -> closed on a success, open again on a failure), the rest
a target takes after a 429, and the latency EWMA. Times are monotonic seconds from the caller.

Half-open lets requests through until the first result arrives; a value cannot count probes in
flight, so concurrent requests may all probe. The first failure re-opens the breaker at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from switchboard.api.v1alpha1 import CircuitBreaker

BreakerState = Literal["closed", "open", "half_open", "resting"]


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """Health of one target. `open_until` 0.0 means the breaker has not tripped since the
    last success; `resting_until` is when a rate limit (429) ends."""

    consecutive_failures: int = 0
    open_until: float = 0.0
    resting_until: float = 0.0


def _tripped(h: TargetHealth) -> bool:
    return h.open_until > 0.0


def after_success(h: TargetHealth) -> TargetHealth:
    """A success closes the breaker. A rest the provider asked for still runs out."""
    return TargetHealth(resting_until=h.resting_until)


def after_failure(h: TargetHealth, now: float, settings: CircuitBreaker) -> TargetHealth:
    """Count a failure; open for the cooldown at the threshold, or at once when half-open.

    A failure arriving while already open (a request sent before it opened) is counted but
    does not extend the cooldown.
    """
    failures = h.consecutive_failures + 1
    if now < h.open_until:
        return replace(h, consecutive_failures=failures)
    if _tripped(h) or failures >= settings.failure_threshold:
        return replace(h, consecutive_failures=failures, open_until=now + settings.cooldown_seconds)
    return replace(h, consecutive_failures=failures)


def after_rate_limit(
    h: TargetHealth, now: float, retry_after: float | None, default_rest: float = 1.0
) -> TargetHealth:
    """Rest until `now + retry_after` (or `default_rest` when the provider named no time).

    Not a breaker failure. A longer rest already running is kept.
    """
    rest = default_rest if retry_after is None else max(retry_after, 0.0)
    return replace(h, resting_until=max(h.resting_until, now + rest))


def breaker_state(h: TargetHealth, now: float) -> BreakerState:
    """The state at `now`; open wins over resting, resting over half_open."""
    if now < h.open_until:
        return "open"
    if now < h.resting_until:
        return "resting"
    return "half_open" if _tripped(h) else "closed"


def is_available(h: TargetHealth, now: float) -> bool:
    """Whether a request may be sent to the target at `now` (closed or half_open)."""
    return breaker_state(h, now) in ("closed", "half_open")


def available_at(h: TargetHealth) -> float:
    """The earliest time the target is neither open nor resting."""
    return max(h.open_until, h.resting_until)


def ewma(previous: float | None, sample: float, alpha: float = 0.3) -> float:
    """Exponentially weighted moving average; the first sample stands alone."""
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous
