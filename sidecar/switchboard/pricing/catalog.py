"""Pure lookup in the genai-prices catalog, overridden by a policy's `price`.

The catalog is data shipped with the `genai-prices` package; nothing is fetched at run time.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from switchboard.api.v1alpha1 import Price
from switchboard.pricing.cost import UnitPrice


def _flat(value: object) -> Decimal | None:
    """A catalog price as one Decimal; tiered prices count at their base tier."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    base = getattr(value, "base", None)
    return base if isinstance(base, Decimal) else None


@lru_cache(maxsize=1024)
def catalog_price(model: str, provider_id: str | None) -> UnitPrice | None:
    """The catalog's price of `model` (at `provider_id` when the catalog knows it), or None."""
    for pid in (provider_id, None) if provider_id else (None,):
        try:
            found = calc_price(
                CatalogUsage(input_tokens=0, output_tokens=0), model, provider_id=pid
            )
        except LookupError:
            continue
        price = found.model_price
        unit_in = _flat(price.input_mtok)
        if unit_in is None:
            continue
        cached = _flat(price.cache_read_mtok)
        return UnitPrice(
            input=unit_in,
            output=_flat(price.output_mtok) or Decimal(0),
            cached_input=unit_in if cached is None else cached,
        )
    return None


def override_price(price: Price) -> UnitPrice:
    """A policy's own price."""
    cached = price.cached_input_per_m_tok
    return UnitPrice(
        input=price.input_per_m_tok,
        output=price.output_per_m_tok,
        cached_input=price.input_per_m_tok if cached is None else cached,
    )
