"""`BodyLimit` / `WSGIBodyLimit`: refuse request bodies over a size, on either side (the rules
are `crossgate.sansio.body_limit.BodyMeter`'s)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any, Generic
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from crossgate.adapters._streams import LineReader
from crossgate.exceptions import PeerProtocolError, ResponseAborted
from crossgate.middleware._common import App, asgi_refuse, close_result, first_header, wsgi_refuse
from crossgate.sansio.body_limit import BodyMeter, declared_length
from crossgate.sansio.response import OptExcInfo
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message

__all__ = ["BodyLimit", "LimitedInput", "WSGIBodyLimit"]


def _caused_by(exc: BaseException, cause: BaseException, depth: int = 0) -> bool:
    """Whether ``exc`` is ``cause`` or carries it (``__cause__``, ``__context__``, a group)."""
    if exc is cause:
        return True
    if depth >= 16:  # plenty for real stacks, and a pathological chain cannot loop
        return False
    links = [exc.__cause__, exc.__context__]
    if isinstance(exc, BaseExceptionGroup):
        links.extend(exc.exceptions)
    return any(link is not None and _caused_by(link, cause, depth + 1) for link in links)


class _BodyLimitBase(Generic[App]):
    def __init__(self, app: App, *, max_body_size: int) -> None:
        size = max_body_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"max_body_size must be an int of 0 or more, not {max_body_size!r}")
        self.app = app
        self.max_body_size = max_body_size


class BodyLimit(_BodyLimitBase[ASGIApp]):
    """ASGI middleware: refuse request bodies larger than ``max_body_size`` bytes with 413;
    [Middleware: BodyLimit](middleware.md#bodylimit) tells when and how.

    Raises:
        ValueError: ``max_body_size`` is not an int of 0 or more.
    """

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = declared_length(first_header(scope["headers"], b"content-length"))
            meter = BodyMeter(self.max_body_size, declared)
        except PeerProtocolError as exc:
            await asgi_refuse(scope, receive, send, exc.status_code, str(exc))
            return
        started = replaced = False

        async def counted_receive() -> Message:
            meter.check()
            message = await receive()
            if message["type"] == "http.request":
                meter.count(len(message.get("body", b"")))
                if not message.get("more_body", False):
                    meter.finish()
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the rest of the app's error page; the 413 already went out
            if message["type"] == "http.response.start" and not started:
                error = meter.error
                if error is not None and message.get("status", 500) >= 500:
                    replaced = True
                    await asgi_refuse(scope, receive, send, error.status_code, str(error))
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception as exc:
            error = meter.error
            if error is None or not _caused_by(exc, error):
                raise
            if started:
                raise ResponseAborted(
                    f"{error} after the response started; dropping the connection"
                ) from exc
        error = meter.error
        if error is not None and not started and not replaced:
            await asgi_refuse(scope, receive, send, error.status_code, str(error))


class LimitedInput(LineReader):
    """``wsgi.input`` counted against a `crossgate.sansio.body_limit.BodyMeter`, whose errors
    its reads raise. The server's ``readline`` must take a size argument."""

    __slots__ = ("_meter", "_stream")

    def __init__(self, stream: IO[bytes] | Any, meter: BodyMeter) -> None:
        self._stream = stream
        self._meter = meter

    def read(self, size: int | None = -1) -> bytes:
        meter = self._meter
        asked = meter.allowance(size)
        if not asked:
            return b""
        data = self._stream.read(asked)
        if 0 < len(data) < asked:
            # PEP 3333 allows short reads: read on, to tell a body cut short from a slow one.
            buffer = bytearray(data)
            while len(buffer) < asked and (more := self._stream.read(asked - len(buffer))):
                buffer += more
            data = bytes(buffer)
        if data:
            meter.count(len(data))
        if len(data) < asked:
            meter.finish()  # end of file; raises when short of CONTENT_LENGTH
        return data

    def readline(self, size: int | None = -1) -> bytes:
        meter = self._meter
        asked = meter.allowance(size)
        if not asked:
            return b""
        data = self._stream.readline(asked)
        if data:
            meter.count(len(data))
        if len(data) < asked and not data.endswith(b"\n"):
            meter.finish()  # neither a whole line nor the size asked: end of file
        return data


class WSGIBodyLimit(_BodyLimitBase[WSGIApplication]):
    """WSGI middleware: the sibling of `BodyLimit`, with the same option; ``wsgi.input``
    becomes a `LimitedInput`.

    Raises:
        ValueError: ``max_body_size`` is not an int of 0 or more.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            declared = declared_length(environ.get("CONTENT_LENGTH"))
            if declared is None and not environ.get("wsgi.input_terminated", False):
                declared = 0
            meter = BodyMeter(self.max_body_size, declared)
        except PeerProtocolError as exc:
            return wsgi_refuse(environ, start_response, exc.status_code, str(exc))
        # In place, as WSGI middleware do: middleware further out see the stream the app read.
        environ["wsgi.input"] = LimitedInput(environ["wsgi.input"], meter)
        started = replaced = False
        refusal: Iterable[bytes] = ()

        def refuse(error: PeerProtocolError, exc_info: OptExcInfo | None) -> Iterable[bytes]:
            nonlocal refusal
            # PEP 3333 "Error Handling": exc_info replaces a status not sent yet, else re-raises.
            exc_info = exc_info if started else None
            refusal = wsgi_refuse(environ, start_response, error.status_code, str(error), exc_info)
            return refusal

        def watched_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Any:
            nonlocal started, replaced
            error = meter.error
            if error is not None and not replaced and status[:1] == "5":
                replaced = True
                refuse(error, exc_info)
            if replaced:
                return lambda data: None  # the write() of an error page being replaced
            started = True
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, watched_start_response)
        except Exception as exc:
            error = meter.error
            if error is None or not _caused_by(exc, error):
                raise
            return refusal if replaced else refuse(error, sys.exc_info())
        if replaced:
            close_result(result)
            return refusal
        error = meter.error
        if error is not None and not started:
            close_result(result)
            return refuse(error, None)
        return result
