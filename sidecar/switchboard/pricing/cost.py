"""Pure: what a call cost, in Decimal USD, from the usage the provider reported."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. `cached_input_tokens` is the part of `input_tokens` read from cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal


ZERO = Decimal(0)


def cost_of(usage: Usage, price: UnitPrice) -> Decimal:
    """Exact cost of `usage`; cached input tokens are billed at the cached rate."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    fresh = usage.input_tokens - cached
    total = fresh * price.input + cached * price.cached_input + usage.output_tokens * price.output
    return total / MILLION


def format_usd(amount: Decimal) -> str:
    """A cost as a plain decimal string (no exponent), as put in headers and tables."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"
