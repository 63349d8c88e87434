"""Start the mock OpenAI-compatible provider as a real subprocess and drive its admin API.

    with MockProvider("openai") as mock:
        mock.set_faults({"fault": "429", "times": 1, "retry_after": 1})
        client = openai.OpenAI(base_url=mock.url, api_key="k", max_retries=0)

Only the standard library is used here, so any test tier can import it.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections.abc import Mapping
from typing import Any

from tests.support.processes import ServerProcess

READY = re.compile(r"^mock-provider (\S+) listening on http://\S+:(?P<port>\d+)$")


class MockProvider(ServerProcess):
    """A `python -m switchboard.mockprovider` process on a free loopback port."""

    def __init__(
        self,
        name: str = "mock",
        *,
        api_key: str | None = None,
        latency_ms: float = 0,
        chunk_delay_ms: float = 0,
        startup_timeout: float = 15.0,
    ) -> None:
        self.name = name
        args = ["--port", "0", "--host", "127.0.0.1", "--name", name]
        args += ["--latency-ms", str(latency_ms), "--chunk-delay-ms", str(chunk_delay_ms)]
        if api_key is not None:
            args += ["--api-key", api_key]
        argv = [sys.executable, "-m", "switchboard.mockprovider", *args]
        super().__init__(argv, READY, startup_timeout=startup_timeout)
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, ending in /v1."""
        return f"{self.base}/v1"

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def set_faults(self, *rules: Mapping[str, object]) -> list[dict[str, Any]]:
        """Replace the fault rules; each is {"fault", "times"?, "model"?, "retry_after"?,
        "delay_ms"?, "after_chunks"?}. Returns the rules as the mock understood them."""
        result: list[dict[str, Any]] = self._call("POST", "/_mock/faults", {"rules": rules})[
            "rules"
        ]
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_mock/stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_mock/requests")
        return result

    def reset(self) -> None:
        self._call("POST", "/_mock/reset", {})
