"""Pure: the exact-match cache key of a request, and whether a request may use the cache.

Rule: every request is cacheable (as in LiteLLM, temperature does not matter: a hit replays an
answer the model really gave) unless its body opts out with Switchboard's `cache` field, shaped
like LiteLLM's: `"cache": false`, `{"no-cache": true}` or `{"no-store": true}`. Header opt-outs
(`Cache-Control: no-cache`) are read by the edge. Storage lives in the edge too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

OPT_OUT_FIELD = "cache"

# Fields that do not change the answer: transport (`stream`, `stream_options`, so a streamed
# and a plain request share an entry), attribution (`user`, `metadata`) and the opt-out itself.
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", OPT_OUT_FIELD})


def cache_key(route: str, endpoint: str, body: Mapping[str, object]) -> str:
    """sha256 hex of the normalised request: the same question gets the same key."""
    normal = {k: _plain(v) for k, v in body.items() if k not in _IGNORED and v is not None}
    if normal.get("n") == 1:
        del normal["n"]
    document = {"route": route, "endpoint": endpoint, "body": normal}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _plain(value: object) -> object:
    """`1.0` and `1` are the same parameter value (top-level options only)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def cacheable(body: Mapping[str, object]) -> bool:
    """False when the body opts out of the cache (see the module docstring)."""
    opt = body.get(OPT_OUT_FIELD)
    if isinstance(opt, Mapping):
        return opt.get("no-cache") is not True and opt.get("no-store") is not True
    return opt is not False
