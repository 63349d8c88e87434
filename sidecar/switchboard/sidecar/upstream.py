"""Edge: HTTP to the providers — one pooled ClientSession per provider base URL."""

from __future__ import annotations

import aiohttp
from yarl import URL

from switchboard.config.runtime import ProviderRuntime
from switchboard.providers.openai_compat import UpstreamError

# What a request to a provider may raise that means "this attempt failed" (error_of_exception).
UPSTREAM_FAILURES = (TimeoutError, aiohttp.ClientError, OSError)


class Upstream:
    """Pooled connections to every provider; sessions outlive config reloads."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._urls: dict[tuple[str, str], URL] = {}

    def _session(self, provider: ProviderRuntime) -> aiohttp.ClientSession:
        session = self._sessions.get(provider.base_url)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=300, keepalive_timeout=60, enable_cleanup_closed=True
            )
            # No cookie jar: the requests of every user of the application share this session,
            # and a cookie one answer sets must not ride along with another user's request.
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[provider.base_url] = session
        return session

    async def post(
        self, provider: ProviderRuntime, path: str, body: bytes, *, stream: bool
    ) -> aiohttp.ClientResponse:
        """Send a request; returns once the response headers are in (the caller bounds the time)."""
        headers = {"Content-Type": "application/json", "User-Agent": "switchboard"}
        if stream:
            headers["Accept"] = "text/event-stream"
        if provider.api_key is not None:
            headers["Authorization"] = f"Bearer {provider.api_key.value}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=provider.connect_timeout, sock_read=provider.timeout
        )
        url = self._urls.get((provider.base_url, path))
        if url is None:  # parsed once: yarl's parse showed in the profile of a busy sidecar
            url = self._urls[(provider.base_url, path)] = URL(provider.base_url + path)
        return await self._session(provider).post(url, data=body, headers=headers, timeout=timeout)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def error_of_exception(exc: BaseException) -> UpstreamError:
    """What a transport failure means for failover; never carries request content or keys."""
    if isinstance(exc, TimeoutError):
        return UpstreamError("timeout", None, True, None, "upstream timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError("connect", None, True, None, f"cannot connect: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamError("connect", None, True, None, "upstream closed the connection")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamError(
            "connect", None, True, None, f"connection failed: {type(exc).__name__}"
        )
    raise exc
