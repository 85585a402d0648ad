"""An in-memory ASGI server for tests: the exact messages and their order, a client that sends
its body in pieces or slowly or leaves midway, every message checked against the ASGI HTTP spec."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossgate._lifespan import LifespanDriver
from crossgate.exceptions import AppProtocolError, CrossgateError
from crossgate.sansio.asgi_response import ResponseCycle
from crossgate.sansio.body_limit import HTTP1_VERSIONS
from crossgate.types import ASGIApp, Message

__all__ = [
    "ASGIConformanceError",
    "HTTPConformanceChecker",
    "HTTPResult",
    "LifespanResult",
    "call_http",
    "call_lifespan",
    "call_websocket",
    "http_scope",
]


class ASGIConformanceError(CrossgateError):
    """The application sent a message the ASGI spec does not allow at that point."""


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    raw_path: bytes | None = None,
    root_path: str = "",
    scheme: str = "http",
    http_version: str = "1.1",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
    extensions: dict[str, dict[object, object]] | None = None,
    type: str = "http",
) -> dict[str, Any]:
    """Build an ASGI HTTP (or, with ``type="websocket"``, websocket) scope as a server would,
    with a ``host`` header unless one is given. ``path`` includes ``root_path`` (ASGI spec)."""
    header_list = [(bytes(k).lower(), bytes(v)) for k, v in headers]
    if not any(k == b"host" for k, _ in header_list) and server is not None:
        name = f"[{server[0]}]" if ":" in server[0] else server[0]  # an IPv6 literal
        host = name if server[1] is None else f"{name}:{server[1]}"
        header_list.insert(0, (b"host", host.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": type,
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": http_version,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode("utf-8") if raw_path is None else raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": header_list,
        "client": client,
        "server": server,
        "extensions": extensions if extensions is not None else {},
        "state": {},
    }
    if type == "http":
        scope["method"] = method
    return scope


class HTTPConformanceChecker(ResponseCycle):
    """Checks an app's HTTP messages against the ASGI HTTP spec, as `ASGIToWSGI` does but strict.
    With ``head``, the body may be shorter than its Content-Length."""

    __slots__ = ()

    def __init__(self, *, head: bool = False) -> None:
        super().__init__(head=head, strict=True, zerocopysend=True)

    def check(self, message: Mapping[str, Any]) -> None:
        """Raise `ASGIConformanceError` when ``message`` may not come now."""
        try:
            self.feed(message)
        except AppProtocolError as exc:
            raise ASGIConformanceError(str(exc)) from None


@dataclass
class HTTPResult:
    """What the fake client saw: every message, and the response they add up to."""

    messages: list[Message] = field(default_factory=list)
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    disconnected: bool = False
    error: BaseException | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        key = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k == key), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


_FRAMING = (b"content-length", b"transfer-encoding")


async def call_http(
    app: ASGIApp,
    scope: Mapping[str, Any] | None = None,
    *,
    body: bytes | Sequence[bytes] = b"",
    body_complete: bool = True,
    disconnect_after_bytes: int | None = None,
    disconnect_after: float | None = None,
    send_delay: float = 0.0,
    send_raises_after_disconnect: bool = True,
    timeout: float = 30.0,
    check: bool = True,
) -> HTTPResult:
    """Run one HTTP request through ``app`` and return what the client saw; what the app raises
    is in ``HTTPResult.error``.

    Args:
        body: the request body, whole or in the chunks the client sends. An HTTP/1 ``scope``
            with neither ``Content-Length`` nor ``Transfer-Encoding`` gets a ``Content-Length``
            of the whole body, as a real client and server would give it.
        body_complete: false: the client leaves right after the chunks.
        disconnect_after_bytes: the client leaves once it got this many response body bytes.
        disconnect_after: the client leaves this many seconds after the start.
        send_raises_after_disconnect: ``send`` raises ``OSError`` once the client left, as
            uvicorn's does; else it drops the message.

    Raises:
        TimeoutError: the app took longer than ``timeout`` seconds.
        ASGIConformanceError: the app sent a message the ASGI spec does not allow.
    """
    scope = dict(scope) if scope is not None else http_scope()
    chunks = [body] if isinstance(body, bytes) else list(body)
    if any(chunks) and scope.get("http_version", "1.1") in HTTP1_VERSIONS:
        headers = scope.get("headers") or ()
        if not any(name in _FRAMING for name, _ in headers):
            # An HTTP/1 client frames every body (RFC 9112 section 6.3), and servers pass the
            # header on: an adapter may take a request without one for a request without body.
            length = str(sum(len(chunk) for chunk in chunks)).encode("ascii")
            scope["headers"] = [*headers, (b"content-length", length)]
    result = HTTPResult()
    checker = HTTPConformanceChecker(head=scope.get("method") == "HEAD")
    over = asyncio.Event()  # the client left, or the response is complete
    index = 0

    def leave() -> None:
        result.disconnected = True
        over.set()

    async def receive() -> Message:
        nonlocal index
        if index < len(chunks):
            index += 1
            more = index < len(chunks) or not body_complete
            return {"type": "http.request", "body": chunks[index - 1], "more_body": more}
        if not body_complete:
            leave()
        # Like uvicorn: after the body, http.disconnect once the client left or the response ended.
        await over.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if result.disconnected:
            if send_raises_after_disconnect:
                raise OSError("the client disconnected")
            return
        if send_delay:
            await asyncio.sleep(send_delay)
        if check:
            checker.check(message)
        result.messages.append(dict(message))
        kind = message["type"]
        if kind == "http.response.start":
            result.status = message["status"]
            result.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
        elif kind == "http.response.body":
            result.body += message.get("body", b"")
            if disconnect_after_bytes is not None and len(result.body) >= disconnect_after_bytes:
                leave()
        if checker.complete:
            result.complete = True
            over.set()

    loop = asyncio.get_running_loop()
    timer = None if disconnect_after is None else loop.call_later(disconnect_after, leave)
    try:
        await asyncio.wait_for(app(scope, receive, send), timeout)
    except (TimeoutError, ASGIConformanceError):
        raise
    except Exception as exc:
        result.error = exc
    finally:
        if timer is not None:
            timer.cancel()
    return result


@dataclass
class LifespanResult:
    """The messages an app sent during a lifespan cycle."""

    messages: list[Message] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [str(m["type"]) for m in self.messages]


async def call_lifespan(
    app: ASGIApp, *, state: dict[str, Any] | None = None, timeout: float = 10.0
) -> LifespanResult:
    """Run a whole lifespan cycle as `ASGIToWSGI` and the routers do: startup, then (when it
    completed) shutdown, and wait for the app to return.

    Raises:
        TimeoutError: the cycle took longer than ``timeout`` seconds.
        Exception: what the app raised.
    """
    driver = LifespanDriver(app)

    async def cycle() -> None:
        await driver.startup(state=state if state is not None else {})
        await driver.shutdown(timeout)  # one still running ends in a TimeoutError
        if driver.task is not None:
            await asyncio.wait((driver.task,))

    try:
        await asyncio.wait_for(cycle(), timeout)
    finally:
        await driver.abort()
    if driver.error is not None:
        raise driver.error
    return LifespanResult(driver.messages)


async def call_websocket(
    app: ASGIApp, scope: Mapping[str, Any] | None = None, *, timeout: float = 10.0
) -> list[Message]:
    """Open a websocket to ``app`` and return what it sent until it closed or refused."""
    scope = dict(scope) if scope is not None else http_scope(type="websocket")
    sent: list[Message] = []
    inbox: list[Message] = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        if inbox:
            return inbox.pop()
        never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        return await never  # the client stays until the app is done

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(app(scope, receive, send), timeout)
    return sent
