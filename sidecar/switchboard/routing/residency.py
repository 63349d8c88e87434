"""Pure: data residency. Owns the one rule of whether a request may reach a provider."""

from __future__ import annotations


def residency_allows(provider_region: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a provider tagged `provider_region` may serve a request allowed `allowed`.

    `allowed` None means the request is unrestricted. A restricted request never reaches a
    provider without a region tag: an untagged provider could be anywhere.
    """
    if allowed is None:
        return True
    return provider_region is not None and provider_region in allowed
