"""A small HTTP/3 client on aioquic's own API, for the HTTP/3 demo tests.

`fetch(port, paths, cafile)` opens one QUIC connection to 127.0.0.1, sends a GET per path, each
on its own stream, and returns each answer's status, headers and body. A stream the server
resets, or a connection that ends, fails the waiting requests; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset

TIMEOUT = 15.0


@dataclass
class H3Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class H3Client(QuicConnectionProtocol):
    """A QUIC connection speaking HTTP/3: `get` sends a request and waits for its answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http = H3Connection(self._quic)
        self._waiting: dict[int, tuple[asyncio.Future[H3Response], H3Response]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset | ConnectionTerminated):
            streams = [event.stream_id] if isinstance(event, StreamReset) else list(self._waiting)
            for stream_id in streams:
                waiting = self._waiting.pop(stream_id, None)
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_exception(ConnectionError(f"HTTP/3 request failed: {event}"))
        for h3_event in self._http.handle_event(event):
            if not isinstance(h3_event, HeadersReceived | DataReceived):
                continue
            found = self._waiting.get(h3_event.stream_id)
            if found is None:
                continue
            future, response = found
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    if name == b":status":
                        response.status = int(value)
                    else:
                        response.headers.append((name, value))
            else:
                response.body += h3_event.data
            if h3_event.stream_ended:
                del self._waiting[h3_event.stream_id]
                future.set_result(response)

    async def get(self, authority: str, path: str) -> H3Response:
        stream_id = self._quic.get_next_available_stream_id()
        request = [(b":method", b"GET"), (b":scheme", b"https")]
        request += [(b":authority", authority.encode()), (b":path", path.encode())]
        self._http.send_headers(stream_id, request, end_stream=True)
        future: asyncio.Future[H3Response] = asyncio.get_running_loop().create_future()
        self._waiting[stream_id] = (future, H3Response())
        self.transmit()
        return await asyncio.wait_for(future, TIMEOUT)


async def fetch(port: int, paths: list[str], cafile: str) -> list[H3Response]:
    """GET every path over one HTTP/3 connection to 127.0.0.1:``port``, concurrently."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(cafile)
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=H3Client
    ) as client:
        assert isinstance(client, H3Client)
        authority = f"127.0.0.1:{port}"
        return list(await asyncio.gather(*(client.get(authority, path) for path in paths)))
