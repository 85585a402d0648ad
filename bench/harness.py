"""A minimal in-process ASGI server: a prepared scope, scripted ``receive``, counting ``send``.

No sockets and no parsing, so what is measured is the adapter. ``receive`` hands out the body
messages, then behaves as uvicorn does: it blocks until the response is complete and only then
answers ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ASGIApp", "BenchError", "Message", "Receive", "Request", "Send", "call", "http_scope"]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}


class BenchError(Exception):
    """An adapter answered something other than the expected response."""


def http_scope(
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class Request:
    """One request's connection: the body goes in as ``messages`` messages of ``chunk``.

    By default the same ``chunk`` object is handed out every time, so the calls/s figures do
    not include the server's copying. With ``fresh`` each message gets a new copy, as from a
    socket: an adapter that keeps references to messages then pays for them in memory, which
    is what the memory figures must show. Either way a 256 MiB upload never exists at once in
    the server's memory: whatever is kept is the adapter's.
    """

    __slots__ = ("_chunk", "_left", "_template", "_waiter", "complete", "received", "status")

    def __init__(self, chunk: bytes = b"", messages: int = 1, *, fresh: bool = False) -> None:
        self._chunk = chunk
        # bytes(bytes) returns its argument; bytes(bytearray) makes a new object.
        self._template = bytearray(chunk) if fresh else None
        self._left = messages
        self.complete = False
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.received = 0

    async def receive(self) -> Message:
        if self._left > 0:
            self._left -= 1
            body = self._chunk if self._template is None else bytes(self._template)
            return {"type": "http.request", "body": body, "more_body": self._left > 0}
        if not self.complete:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)
        else:
            raise BenchError(f"unexpected message {kind!r}")


async def call(
    app: ASGIApp,
    scope: dict[str, Any],
    chunk: bytes,
    messages: int,
    expect: int,
    *,
    fresh: bool = False,
) -> None:
    """Make one request; raise :class:`BenchError` unless a 200 with ``expect`` bytes came back."""
    request = Request(chunk, messages, fresh=fresh)
    await app(scope, request.receive, request.send)
    if request.status != 200 or request.received != expect or not request.complete:
        raise BenchError(
            f"got status {request.status} with {request.received} of {expect} bytes"
            + ("" if request.complete else ", response not finished")
        )
