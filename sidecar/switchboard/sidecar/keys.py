"""Edge: the typed keys of the sidecar's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from switchboard.sidecar.deps import Deps

DEPS = web.AppKey("deps", Deps)
