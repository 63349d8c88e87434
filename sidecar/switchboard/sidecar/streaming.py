"""Pure: relaying an upstream SSE stream to the client, event by event, without re-serialising.

`StreamTally` follows what has passed (usage, output chunks, text when asked for) and `relay`
decides which raw event bytes go to the client as they come: everything except the usage-only
chunk and `[DONE]`. Both come back in `stream_tail`, which ends every stream the sidecar
relays: the usage chunk only for clients that asked for it, the cost comment, then `[DONE]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from switchboard.pricing.cost import Usage, format_usd
from switchboard.providers.client_request import client_wants_usage
from switchboard.providers.openai_compat import (
    StreamChunk,
    UpstreamProtocolError,
    parse_stream_event,
)
from switchboard.providers.sse import SSEEvent

DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(slots=True)
class StreamTally:
    """What a stream has delivered so far."""

    keep_text: bool
    usage: Usage | None = None
    usage_event: bytes | None = None
    output_chunks: int = 0
    events: int = 0
    done: bool = False
    invalid: bool = False
    """An event was not a valid chunk: the relay stopped before it."""
    response_model: str | None = None
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def billed_usage(self, prompt_estimate: int) -> tuple[Usage, bool]:
        """Reported usage, or an estimate (prompt estimate + one token per output chunk)."""
        if self.usage is not None:
            return self.usage, False
        return Usage(input_tokens=prompt_estimate, output_tokens=self.output_chunks), True


def relay(
    events: Iterable[SSEEvent], tally: StreamTally, parsed: Sequence[StreamChunk | None] = ()
) -> bytes:
    """The bytes of `events` to forward as they come; the usage-only chunk is kept aside.

    `parsed[i]`, when given, is event i's data already parsed (it is not parsed again). At an
    event that is not a valid chunk the relay stops (`tally.invalid`): the events before it are
    still forwarded, since the client has been billed for them."""
    out: list[bytes] = []
    for index, event in enumerate(events):
        if tally.done or tally.invalid:
            break
        if event.data is None:
            out.append(event.raw)
            continue
        known = parsed[index] if index < len(parsed) else None
        try:
            chunk = known if known is not None else parse_stream_event(event.data)
        except UpstreamProtocolError:
            tally.invalid = True
            break
        tally.events += 1
        if chunk.done:
            tally.done = True
            break
        if chunk.usage is not None:
            tally.usage = chunk.usage
        if chunk.response_model and tally.response_model is None:
            tally.response_model = chunk.response_model
        if chunk.text:
            tally.output_chunks += 1
            if tally.keep_text:
                tally.text_parts.append(chunk.text)
        if chunk.usage_only:
            tally.usage_event = event.raw
            continue
        out.append(event.raw)
    return b"".join(out)


def cost_comment(cost: Decimal) -> bytes:
    """An SSE comment carrying the stream's cost (clients ignore comments)."""
    return f": x-switchboard-cost-usd={format_usd(cost)}\n\n".encode()


def stream_tail(usage_event: bytes | None, body: Mapping[str, object], cost: Decimal) -> bytes:
    """The end of a stream the client gets: the usage-only chunk (only when the request asked
    for usage with `stream_options.include_usage`), the cost comment, then `[DONE]`."""
    usage = usage_event if usage_event and client_wants_usage(body) else b""
    return usage + cost_comment(cost) + DONE_EVENT


def error_event(message: str, type_: str = "upstream_stream_error") -> bytes:
    """The explicit error a client gets when the upstream stream breaks after the first byte."""
    payload = {"error": {"message": message, "type": type_, "param": None, "code": None}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"
