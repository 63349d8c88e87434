"""Edge: a byte relay for the benchmark — the machine's floor for any proxy on the proxy core.

Every connection it accepts gets one connection to the upstream, and bytes are copied both
ways as they come (uvloop, no HTTP parsing, no buffering beyond the kernel's). Run on the
proxy's core it costs what any proxy pays on this machine before doing any work: two more
loopback hops, and the wake-ups of the cores they cross (on a virtual machine a wake-up of
an idle core can cost tens of microseconds). The benchmark reports the sidecar's added
latency beside it.

`python bench/relay.py --upstream 127.0.0.1:PORT` prints
`relay listening on http://127.0.0.1:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []  # what arrived before the upstream connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        asyncio.get_running_loop().create_task(self._connect(self.transport))

    async def _connect(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: _Upstream(transport), self.host, self.port
            )
        except OSError:
            transport.close()
            return
        self.upstream = upstream
        upstream.write(b"".join(self.early))
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(upstream: str) -> None:
    host, _, port = upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(host, int(port)), "127.0.0.1", 0)
    print(f"relay listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    uvloop.run(serve(parser.parse_args().upstream))


if __name__ == "__main__":
    main()
