"""`GZip`, the ASGI side of `crossgate.middleware.gzip`."""

from __future__ import annotations

from typing import Any

from crossgate.exceptions import AppProtocolError
from crossgate.middleware._common import first_header
from crossgate.middleware.gzip._options import GZipBase, GZipOptions
from crossgate.sansio.gzip import (
    Action,
    Plan,
    compresses_at,
    negotiate,
    planned_headers,
    response_facts,
)
from crossgate.sansio.gzip_codec import Compressor
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message

__all__ = ["GZip"]

# ASGI spec, "Extensions": with these the app may hand the body to the server as a file, which
# cannot be compressed on the way; the decision then waits for the first body message.
_FILE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopysend")


class GZip(GZipBase[ASGIApp]):
    """ASGI middleware: compress ``http`` responses with gzip, or brotli when preferred.

    Args:
        app: the ASGI application.
        minimum_size: bodies shorter than this many bytes are sent uncompressed, when their
            size is known (a ``Content-Length``, or a body sent whole in one message).
        compresslevel: the gzip level, 0 to 9.
        brotli: ``None`` (the default) offers ``br`` when the `brotli` package imports;
            ``True`` requires it; ``False`` never offers it.
        brotli_quality: the brotli quality, 0 to 11.
        excluded_types: media types never compressed (``"type/*"`` covers a top-level type);
            `crossgate.sansio.gzip.DEFAULT_EXCLUDED_TYPES` by default, which has
            ``text/event-stream``.
        max_random_bytes: pad each gzip response with 0 to this many random bytes (in the gzip
            header's file name field, as Django 4.2+ does with 100), so that its compressed
            length does not tell an attacker which guess of a secret matched (BREACH). 0, the
            default, pads nothing. With padding on, ``br`` is not offered (``brotli=True``
            raises): brotli has no field to put it in. See the Security page for when to use it.

    Headers are passed on as soon as the decision can be made: at ``http.response.start`` when
    it carries a ``Content-Length`` (or the response is not to be compressed); otherwise it is
    held until the app's first body message, which shows whether the body is small and whole.
    It is also held until then when the server offers ``http.response.pathsend`` or
    ``zerocopysend``, as the app may hand its body over as a file, which is passed on
    uncompressed. Each body message is compressed and flushed on its own; a body sent whole in
    one message gets a ``Content-Length`` for its compressed size.

    Scopes other than ``http`` pass through untouched.

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


def _restart(message: Message, plan: Plan, coding: str | None, length: int | None) -> Message:
    """``http.response.start`` with ``plan`` applied to its headers."""
    headers = planned_headers(message.get("headers", ()), plan, coding, length, _asgi_pair)
    return {**message, "headers": headers}


class _GZipResponder:
    """The ``send`` `GZip` gives the app for one response.

    Until ``http.response.start`` nothing is decided; then the response is either passed on,
    compressed (`_compressor` is set until the last body message), or its start is held
    (`_held`) until the first body message settles the size question.
    """

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
        self._held: tuple[Message, Plan, str] | None = None
        self._compressor: Compressor | None = None

    async def send(self, message: Message) -> None:
        compressor = self._compressor
        if compressor is not None:
            await self._send(self._compress(compressor, message))
            return
        held = self._held
        if held is not None:
            self._held = None
            await self._decide(message, *held)
            return
        if not self._started and message["type"] == "http.response.start":
            self._started = True
            await self._start(message)
            return
        await self._send(message)  # passed on as is (out of order: the server reports it)

    async def _start(self, message: Message) -> None:
        facts = response_facts(
            int(message.get("status", 200)),
            message.get("headers", ()),
            trailers=bool(message.get("trailers")),
        )
        plan = self.options.plan(facts, self.method, self.coding, self.wait)
        action, coding = plan.action, plan.coding
        if action is Action.SKIP:
            await self._send(message)
        elif action is Action.IDENTITY or coding is None:
            await self._send(_restart(message, plan, None, None))
        elif action is Action.COMPRESS:
            self._compressor = self.options.compressor(coding)
            await self._send(_restart(message, plan, coding, None))
        else:
            self._held = (message, plan, coding)

    async def _decide(self, message: Message, held: Message, plan: Plan, coding: str) -> None:
        """The held start, and the first message after it: now the size question is settled."""
        if message["type"] != "http.response.body":
            # A file handed to the server (pathsend / zerocopysend) goes out uncompressed.
            await self._send(_restart(held, plan, None, None))
            await self._send(message)
            return
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        options = self.options
        if not compresses_at(len(body), complete=not more, minimum_size=options.minimum_size):
            await self._send(_restart(held, plan, None, None))
            await self._send(message)
        elif not more:
            # The whole body is here: compress it in one go and say how long it is.
            compressed = options.whole(coding, (body,))
            await self._send(_restart(held, plan, coding, len(compressed)))
            await self._send({"type": "http.response.body", "body": compressed})
        else:
            compressor = self._compressor = options.compressor(coding)
            await self._send(_restart(held, plan, coding, None))
            await self._send(self._compress(compressor, message))

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
