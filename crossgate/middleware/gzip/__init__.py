"""`GZip` / `WSGIGZip`: compress responses with gzip (or brotli) without holding streams back.

Both negotiate ``Accept-Encoding``, leave alone what should not be compressed (see
`crossgate.sansio.gzip.plan_response`), add ``Vary: Accept-Encoding`` to every response that
could have been compressed, and flush the compressor after every chunk the app sends, so
server-sent-event-like streams and long polls reach the client as they are produced. Request
bodies are never decompressed (no decompression bomb can go off here). Both sides take the same
options, declared once (``_options.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from crossgate.exceptions import AppProtocolError
from crossgate.middleware._common import close_result, first_header
from crossgate.middleware.gzip._options import GZipBase, GZipOptions
from crossgate.sansio.gzip import Action, Plan, negotiate, planned_headers
from crossgate.sansio.gzip_codec import Compressor
from crossgate.sansio.response import OptExcInfo
from crossgate.types import (
    ASGIApp,
    ASGIReceive,
    ASGISend,
    Message,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

__all__ = ["GZip", "WSGIGZip"]

# ASGI spec, "Extensions": with these the app may hand the body to the server as a file, which
# cannot be compressed on the way; the decision then waits for the first body message.
_FILE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopysend")


class GZip(GZipBase[ASGIApp]):
    """ASGI middleware: compress ``http`` responses with gzip, or brotli when preferred.

    Args:
        app: the ASGI application.
        minimum_size: bodies known to be shorter than this many bytes are sent uncompressed.
        compresslevel: the gzip level, 0 to 9.
        brotli: ``None`` offers ``br`` when `brotli` imports; ``True`` requires it.
        brotli_quality: the brotli quality, 0 to 11.
        excluded_types: media types never compressed (``"type/*"`` covers a top-level type).
        max_random_bytes: pad each gzip response with 0 to this many random bytes against
            BREACH (``br`` is then not offered); 0 pads nothing.

    ``http.response.start`` is passed on at once when it carries a ``Content-Length`` (or is
    not to be compressed), else held until the first body message shows whether the body is
    small and whole. Scopes other than ``http`` pass through untouched.

    Raises:
        ValueError: an option out of range, ``brotli=True`` without the package or with
            ``max_random_bytes``.
    """

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extensions = scope.get("extensions") or {}
        responder = _GZipResponder(
            self.options,
            scope.get("method", "GET"),
            negotiate(first_header(scope["headers"], b"accept-encoding"), self.options.codings),
            any(name in extensions for name in _FILE_EXTENSIONS),
            send,
        )
        await self.app(scope, receive, responder.send)


def _asgi_pair(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


class _GZipResponder:
    """The ``send`` `GZip` gives the app for one response: passed on, compressed (`_compressor`
    until the last body message), or its start held (`_held`) until the first body message."""

    __slots__ = ("_compressor", "_held", "_send", "_started", "coding", "method", "options", "wait")

    def __init__(
        self, options: GZipOptions, method: str, coding: str | None, wait: bool, send: ASGISend
    ) -> None:
        self.options = options
        self.method = method
        self.coding = coding
        self.wait = wait
        self._send = send
        self._started = False
        self._held: tuple[Message, Plan] | None = None
        self._compressor: Compressor | None = None

    async def send(self, message: Message) -> None:
        compressor = self._compressor
        if compressor is not None:
            await self._send(self._compress(compressor, message))
        elif self._held is not None:
            await self._decide(message, *self._held)
        elif not self._started and message["type"] == "http.response.start":
            self._started = True
            plan = self.options.plan(
                int(message.get("status", 200)),
                message.get("headers", ()),
                self.method,
                self.coding,
                trailers=bool(message.get("trailers")),
                wait=self.wait,
            )
            if plan.action is Action.SKIP:
                await self._send(message)
            elif plan.action is Action.WAIT:
                self._held = (message, plan)
            else:
                await self._commit(message, plan, plan.coding)
        else:
            await self._send(message)  # passed on as is (out of order: the server reports it)

    async def _commit(
        self, start: Message, plan: Plan, coding: str | None, length: int | None = None
    ) -> None:
        """Send ``start`` with ``plan`` applied; compress what follows when ``coding`` is set
        and the body is not already compressed whole (``length``)."""
        if coding is not None and length is None:
            self._compressor = self.options.compressor(coding)
        headers = planned_headers(start.get("headers", ()), plan, coding, length, _asgi_pair)
        await self._send({**start, "headers": headers})

    async def _decide(self, message: Message, held: Message, plan: Plan) -> None:
        """The held start, and the first message after it: now the size question is settled."""
        self._held = None
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        coding = None  # a file handed to the server (pathsend / zerocopysend) goes out as is
        if message["type"] == "http.response.body":
            coding = self.options.coding_for(plan, len(body), complete=not more)
        if coding is not None and not more:
            # The whole body is here: compress it in one go and say how long it is.
            compressed = self.options.whole(coding, (body,))
            await self._commit(held, plan, coding, len(compressed))
            await self._send({"type": "http.response.body", "body": compressed})
        else:
            await self._commit(held, plan, coding)
            await self.send(message)

    def _compress(self, compressor: Compressor, message: Message) -> Message:
        if message["type"] != "http.response.body":
            raise AppProtocolError(
                f"{message['type']!r} cannot follow a compressed http.response.start; "
                "only http.response.body can"
            )
        body = message.get("body", b"")
        if message.get("more_body", False):
            # An empty body message is passed on as such (apps send them to test the
            # connection); a non-empty one is flushed so the client gets it now.
            return {"type": "http.response.body", "body": compressor.chunk(body), "more_body": True}
        self._compressor = None  # the response is complete
        return {"type": "http.response.body", "body": compressor.last(body)}


class WSGIGZip(GZipBase[WSGIApplication]):
    """WSGI middleware: the sibling of `GZip`, with the same options.

    A response that is not compressed is returned as the app's own iterable, so
    ``wsgi.file_wrapper`` keeps its fast path. A list or tuple is compressed whole (with a
    ``Content-Length``); any other iterable is a stream, each chunk compressed and flushed.

    Raises:
        ValueError: an option out of range, ``brotli=True`` without the package or with
            ``max_random_bytes``.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        coding = negotiate(environ.get("HTTP_ACCEPT_ENCODING"), self.options.codings)
        response = _GZipWSGIResponse(
            self.options, environ.get("REQUEST_METHOD", "GET"), coding, start_response
        )
        result = self.app(environ, response.start_response)
        try:
            return response.wrap(result)
        except BaseException:
            close_result(result)
            raise


def _wsgi_pair(name: str, value: str) -> tuple[str, str]:
    return name, value


class _GZipWSGIResponse:
    """One response through `WSGIGZip`: ``start_response``, ``write``, and the app's iterable
    with each chunk compressed and flushed (``close()`` always reaches the app's).

    The real ``start_response`` is called once the decision is made (`commit`), as PEP 3333
    allows: the headers go out with the first non-empty body chunk.
    """

    __slots__ = (
        "coding",
        "compressor",
        "done",
        "emitted",
        "exc_info",
        "headers",
        "iterator",
        "method",
        "options",
        "plan",
        "real",
        "result",
        "status",
        "writer",
    )

    def __init__(
        self, options: GZipOptions, method: str, coding: str | None, start_response: StartResponse
    ) -> None:
        self.options = options
        self.method = method
        self.coding = coding
        self.real = start_response
        self.status = ""  # "" until start_response is called
        self.headers: list[tuple[str, str]] = []
        self.exc_info: OptExcInfo | None = None
        self.plan: Plan | None = None  # set once committed
        self.compressor: Compressor | None = None
        self.writer: Any = None
        self.emitted = False  # non-empty body bytes went to the server
        self.result: Iterable[bytes] = ()
        self.iterator: Iterator[bytes] | None = None
        self.done = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        if exc_info is not None and exc_info[1] is not None:
            if self.emitted:
                # PEP 3333 ("Error Handling"): the headers are out, so re-raise.
                raise exc_info[1].with_traceback(exc_info[2])
            # Not sent yet: decide again for the error response.
            self.plan = None
            self.compressor = None
        elif self.status:
            raise AppProtocolError(
                "start_response() was called a second time without exc_info (PEP 3333)"
            )
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.write

    def decide(self) -> Plan:
        """The plan for the response ``start_response`` described.

        Raises:
            AppProtocolError: ``start_response`` was not called.
        """
        if not self.status:
            raise AppProtocolError(
                "the application produced a body without calling start_response()"
            )
        code = self.status[:3]
        status = int(code) if code.isdigit() else 500
        return self.options.plan(status, self.headers, self.method, self.coding)

    def commit(self, plan: Plan, coding: str | None, length: int | None = None) -> None:
        """Call the real ``start_response`` with ``plan`` applied; ``coding`` to compress
        (what follows, unless the body is compressed whole already: ``length``)."""
        self.plan = plan
        if coding is not None and length is None:
            self.compressor = self.options.compressor(coding)
        headers = self.headers
        if plan.action is not Action.SKIP:
            headers = planned_headers(headers, plan, coding, length, _wsgi_pair)
        self.writer = self.real(self.status, headers, self.exc_info)

    def start(self, size: int, *, complete: bool) -> None:
        """Commit for a body whose first ``size`` bytes are here (``complete``: all of it)."""
        plan = self.decide()
        self.commit(plan, self.options.coding_for(plan, size, complete=complete))

    def write(self, data: bytes) -> None:
        """The ``write`` callable (PEP 3333): the body so far is a stream."""
        out = self.encode(data)
        if out:
            self.writer(out)

    def encode(self, data: bytes) -> bytes:
        """A chunk of a body of unknown size, compressed when the plan says so."""
        if self.plan is None:
            self.start(len(data), complete=False)
        compressor = self.compressor
        out = data if compressor is None else compressor.chunk(data)
        if out:
            self.emitted = True
        return out

    def wrap(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """What `WSGIGZip` returns to the server for the app's ``result``."""
        self.result = result
        if self.plan is not None or not self.status:
            # write() was used, or start_response comes with the first chunk: stream it.
            return self
        plan = self.decide()
        if isinstance(result, list | tuple):
            coding = self.options.coding_for(plan, sum(map(len, result)), complete=True)
            if coding is None:
                self.commit(plan, None)
                return result
            compressed = self.options.whole(coding, result)
            close_result(result)
            self.commit(plan, coding, len(compressed))
            return [compressed]
        if plan.action is not Action.WAIT:
            self.commit(plan, plan.coding)
            if plan.coding is None:
                return result  # the app's own object: wsgi.file_wrapper keeps its fast path
        # Otherwise the first chunk decides (an empty body is then sent as is); the server sends
        # nothing before it anyway (PEP 3333: headers go out with the first non-empty chunk).
        return self

    def __iter__(self) -> _GZipWSGIResponse:
        return self

    def __next__(self) -> bytes:
        if self.done:
            raise StopIteration
        if self.iterator is None:
            self.iterator = iter(self.result)
        try:
            chunk = next(self.iterator)
        except StopIteration:
            self.done = True
            if self.plan is None and self.status:
                self.start(0, complete=True)  # the body ended before its first chunk
            if self.compressor is None:
                raise  # sent as is (or no start_response at all: the server reports it)
            return self.compressor.last()
        return self.encode(chunk)

    def close(self) -> None:
        self.done = True
        close_result(self.result)
