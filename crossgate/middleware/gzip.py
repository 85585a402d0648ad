"""`GZip` / `WSGIGZip`: compress responses with gzip (or brotli) without holding streams back.

Both negotiate ``Accept-Encoding``, leave alone what should not be compressed (see
`crossgate.sansio.gzip.plan_response`), add ``Vary: Accept-Encoding`` to every response
that could have been compressed, and flush the compressor after every chunk the app sends, so
server-sent-event-like streams and long polls reach the client as they are produced. Requests are
never decompressed: a request body with ``Content-Encoding: gzip`` reaches the app as sent (no
decompression bomb can go off here).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from crossgate.exceptions import AppProtocolError
from crossgate.sansio.gzip import (
    DEFAULT_EXCLUDED_TYPES,
    DROPPED_WHEN_COMPRESSED,
    Action,
    Compressor,
    Plan,
    ResponseFacts,
    brotli_available,
    compress_whole,
    compresses_at,
    negotiate,
    plan_response,
)
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

# Response header name -> the ResponseFacts field it fills.
_FACT_FIELDS = {
    "content-type": "content_type",
    "content-encoding": "content_encoding",
    "content-length": "content_length",
    "content-range": "content_range",
    "cache-control": "cache_control",
    "etag": "etag",
    "vary": "vary",
}
_FACT_FIELDS_B = {name.encode("latin-1"): attr for name, attr in _FACT_FIELDS.items()}
_DROPPED_WHEN_COMPRESSED_B = frozenset(name.encode("ascii") for name in DROPPED_WHEN_COMPRESSED)
# ASGI spec, "Extensions": with these the app may hand the body to the server as a file, which
# cannot be compressed on the way; the decision then waits for the first body message.
_FILE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopysend")


class _Options:
    """The options `GZip` and `WSGIGZip` share, checked once."""

    __slots__ = (
        "brotli_quality",
        "codings",
        "compresslevel",
        "excluded_types",
        "max_random_bytes",
        "minimum_size",
    )

    def __init__(
        self,
        *,
        minimum_size: int,
        compresslevel: int,
        brotli: bool | None,
        brotli_quality: int,
        excluded_types: Iterable[str],
        max_random_bytes: int,
    ) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be 0 or more, not {minimum_size}")
        if isinstance(max_random_bytes, bool) or max_random_bytes < 0:
            raise ValueError(f"max_random_bytes must be 0 or more, not {max_random_bytes!r}")
        if max_random_bytes and brotli:
            raise ValueError(
                "max_random_bytes pads gzip only (brotli has no field for it): pass brotli=False"
            )
        self.max_random_bytes = max_random_bytes
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be between 0 and 9, not {compresslevel}")
        if not 0 <= brotli_quality <= 11:
            raise ValueError(f"brotli_quality must be between 0 and 11, not {brotli_quality}")
        if brotli and not brotli_available():
            raise ValueError("brotli=True needs the brotli package: pip install brotli")
        # With padding on, br is not offered: a br response would go unpadded.
        use_brotli = (brotli_available() if brotli is None else brotli) and not max_random_bytes
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.brotli_quality = brotli_quality
        # Server preference on equal q-values: brotli compresses text smaller than gzip.
        self.codings: tuple[str, ...] = ("br", "gzip") if use_brotli else ("gzip",)
        self.excluded_types = frozenset(t.strip().lower() for t in excluded_types)

    def plan(self, facts: ResponseFacts, method: str, coding: str | None, wait: bool) -> Plan:
        return plan_response(
            facts,
            method=method,
            coding=coding,
            minimum_size=self.minimum_size,
            excluded_types=self.excluded_types,
            wait_for_body=wait,
        )

    def padding(self) -> int | None:
        """A fresh random padding length for one response (0 to ``max_random_bytes``)."""
        limit = self.max_random_bytes
        return secrets.randbelow(limit + 1) if limit else None

    def compressor(self, coding: str) -> Compressor:
        return Compressor(
            coding,
            level=self.compresslevel,
            brotli_quality=self.brotli_quality,
            padding=self.padding(),
        )

    def whole(self, coding: str, parts: Iterable[bytes]) -> bytes:
        return compress_whole(
            coding,
            parts,
            level=self.compresslevel,
            brotli_quality=self.brotli_quality,
            padding=self.padding(),
        )


class GZip:
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

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 500,
        compresslevel: int = 6,
        brotli: bool | None = None,
        brotli_quality: int = 4,
        excluded_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
        max_random_bytes: int = 0,
    ) -> None:
        self.app = app
        self.options = _Options(
            minimum_size=minimum_size,
            compresslevel=compresslevel,
            brotli=brotli,
            brotli_quality=brotli_quality,
            excluded_types=excluded_types,
            max_random_bytes=max_random_bytes,
        )

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value
                break
        extensions = scope.get("extensions") or {}
        responder = _ASGIResponder(
            self.options,
            scope.get("method", "GET"),
            negotiate(accept, self.options.codings),
            any(name in extensions for name in _FILE_EXTENSIONS),
            send,
        )
        await self.app(scope, receive, responder.send)


def _asgi_facts(start: Message) -> ResponseFacts:
    facts = ResponseFacts(int(start.get("status", 200)), trailers=bool(start.get("trailers")))
    for name, value in start.get("headers", ()):
        attr = _FACT_FIELDS_B.get(name.lower())
        if attr is not None:
            _add_fact(facts, attr, value.decode("latin-1"))
    return facts


def _add_fact(facts: ResponseFacts, attr: str, value: str) -> None:
    # A repeated field is one comma-separated list (RFC 9110 section 5.3). Joined, a repeated
    # Content-Length is no longer a number and Content-Encoding no longer "identity", so such
    # a response is left alone rather than guessed at.
    old = getattr(facts, attr)
    setattr(facts, attr, value if old is None else f"{old}, {value}")


def _asgi_headers(
    headers: Iterable[tuple[bytes, bytes]], plan: Plan, coding: str | None, length: int | None
) -> list[tuple[bytes, bytes]]:
    """The response headers with ``plan`` applied; ``coding`` set when compressing."""
    dropped = {b"vary"} if plan.vary is not None else set()
    if coding is not None:
        dropped |= _DROPPED_WHEN_COMPRESSED_B
        if plan.etag is not None:
            dropped.add(b"etag")
    out = [(k, v) for k, v in headers if k.lower() not in dropped]
    if plan.vary is not None:
        out.append((b"vary", plan.vary.encode("latin-1")))
    if coding is not None:
        out.append((b"content-encoding", coding.encode("ascii")))
        if plan.etag is not None:
            out.append((b"etag", plan.etag.encode("latin-1")))
        if length is not None:
            out.append((b"content-length", str(length).encode("ascii")))
    return out


class _ASGIResponder:
    """The ``send`` `GZip` gives the app for one response.

    Until ``http.response.start`` nothing is decided; then the response is either passed on,
    compressed (`_compressor` is set until the last body message), or its start is held
    (`_held`) until the first body message settles the size question.
    """

    __slots__ = ("_compressor", "_held", "_send", "_started", "coding", "method", "options", "wait")

    def __init__(
        self, options: _Options, method: str, coding: str | None, wait: bool, send: ASGISend
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
        plan = self.options.plan(_asgi_facts(message), self.method, self.coding, self.wait)
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


def _restart(message: Message, plan: Plan, coding: str | None, length: int | None) -> Message:
    """``http.response.start`` with ``plan`` applied to its headers."""
    return {**message, "headers": _asgi_headers(message.get("headers", ()), plan, coding, length)}


class WSGIGZip:
    """WSGI middleware: the sibling of `GZip`, with the same options.

    The decision is made as soon as the response headers and, when needed, the size are known:
    when the app returns, if it called ``start_response`` by then (or at its first body chunk,
    or its first ``write()``). A response that is not compressed is returned as the app's own
    iterable, so ``wsgi.file_wrapper`` keeps its fast path. A list or tuple is compressed whole
    (with a ``Content-Length``); any other iterable is compressed chunk by chunk, each chunk
    flushed, and counts as a stream (its size is not checked against ``minimum_size``).
    ``close()`` of the app's iterable is always called.

    Raises:
        ValueError: an option out of range, ``brotli=True`` without the package or with
            ``max_random_bytes``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        minimum_size: int = 500,
        compresslevel: int = 6,
        brotli: bool | None = None,
        brotli_quality: int = 4,
        excluded_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
        max_random_bytes: int = 0,
    ) -> None:
        self.app = app
        self.options = _Options(
            minimum_size=minimum_size,
            compresslevel=compresslevel,
            brotli=brotli,
            brotli_quality=brotli_quality,
            excluded_types=excluded_types,
            max_random_bytes=max_random_bytes,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        accept = environ.get("HTTP_ACCEPT_ENCODING")
        coding = negotiate(accept, self.options.codings)
        response = _WSGIResponse(
            self.options, environ.get("REQUEST_METHOD", "GET"), coding, start_response
        )
        result = self.app(environ, response.start_response)
        try:
            return response.wrap(result)
        except BaseException:
            _close(result)
            raise


def _close(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


def _wsgi_facts(status: str, headers: list[tuple[str, str]]) -> ResponseFacts:
    code = status[:3]
    facts = ResponseFacts(int(code) if code.isdigit() else 500)
    for name, value in headers:
        attr = _FACT_FIELDS.get(name.lower())
        if attr is not None:
            _add_fact(facts, attr, value)
    return facts


def _wsgi_headers(
    headers: list[tuple[str, str]], plan: Plan, coding: str | None, length: int | None
) -> list[tuple[str, str]]:
    """The response headers with ``plan`` applied; ``coding`` set when compressing."""
    dropped = {"vary"} if plan.vary is not None else set()
    if coding is not None:
        dropped |= DROPPED_WHEN_COMPRESSED
        if plan.etag is not None:
            dropped.add("etag")
    out = [(k, v) for k, v in headers if k.lower() not in dropped]
    if plan.vary is not None:
        out.append(("Vary", plan.vary))
    if coding is not None:
        out.append(("Content-Encoding", coding))
        if plan.etag is not None:
            out.append(("ETag", plan.etag))
        if length is not None:
            out.append(("Content-Length", str(length)))
    return out


class _WSGIResponse:
    """One response through `WSGIGZip`: ``start_response``, ``write`` and the iterable.

    The real ``start_response`` is called once the decision is made (`commit`); nothing reaches
    the server before that, as PEP 3333 allows ("The start_response() Callable": the headers go
    out with the first non-empty body chunk).
    """

    __slots__ = (
        "coding",
        "compressor",
        "emitted",
        "exc_info",
        "headers",
        "method",
        "options",
        "plan",
        "real",
        "status",
        "writer",
    )

    def __init__(
        self, options: _Options, method: str, coding: str | None, start_response: StartResponse
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
        facts = _wsgi_facts(self.status, self.headers)
        return self.options.plan(facts, self.method, self.coding, False)

    def whole_coding(self, plan: Plan, size: int) -> str | None:
        """The coding for a body known whole, ``size`` bytes long; ``None``: send it as is."""
        action = plan.action
        if action is Action.COMPRESS or (
            action is Action.WAIT
            and compresses_at(size, complete=True, minimum_size=self.options.minimum_size)
        ):
            return plan.coding
        return None

    def commit(self, plan: Plan, coding: str | None, length: int | None = None) -> None:
        """Call the real ``start_response`` with ``plan`` applied; ``coding`` to compress."""
        self.plan = plan
        self.compressor = None if coding is None else self.options.compressor(coding)
        headers = self.headers
        if plan.action is not Action.SKIP:
            headers = _wsgi_headers(headers, plan, coding, length)
        self.writer = self.real(self.status, headers, self.exc_info)

    def commit_streaming(self) -> None:
        """Commit for a body of unknown size, now that its first bytes are here."""
        plan = self.decide()
        streamed = plan.action is Action.COMPRESS or plan.action is Action.WAIT
        self.commit(plan, plan.coding if streamed else None)

    def write(self, data: bytes) -> None:
        """The ``write`` callable (PEP 3333): the body so far is a stream."""
        if self.plan is None:
            self.commit_streaming()
        compressor = self.compressor
        out = data if compressor is None else compressor.chunk(data)
        if out:
            self.emitted = True
            self.writer(out)

    def wrap(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """What `WSGIGZip` returns to the server for the app's ``result``."""
        if self.plan is not None or not self.status:
            # write() was used, or start_response comes with the first chunk: stream it.
            return _CompressingIterable(self, result)
        plan = self.decide()
        action, coding = plan.action, plan.coding
        if action is Action.SKIP or action is Action.IDENTITY or coding is None:
            self.commit(plan, None)
            return result  # the app's own object: wsgi.file_wrapper keeps its fast path
        if isinstance(result, list | tuple):
            parts: Sequence[bytes] = result
            whole = self.whole_coding(plan, sum(len(part) for part in parts))
            if whole is None:
                self.commit(plan, None)
                return result
            compressed = self.options.whole(whole, parts)
            _close(result)
            self.commit(plan, whole, len(compressed))
            return [compressed]
        if action is Action.COMPRESS:
            self.commit(plan, coding)
        # Otherwise the first chunk decides (an empty body is then sent as is); the server sends
        # nothing before it anyway (PEP 3333: headers go out with the first non-empty chunk).
        return _CompressingIterable(self, result)


class _CompressingIterable:
    """The app's iterable, each chunk compressed and flushed; ``close()`` always reaches it."""

    __slots__ = ("_done", "_iterator", "_response", "_result")

    def __init__(self, response: _WSGIResponse, result: Iterable[bytes]) -> None:
        self._response = response
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._done = False

    def __iter__(self) -> _CompressingIterable:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        if self._iterator is None:
            self._iterator = iter(self._result)
        response = self._response
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._done = True
            if response.plan is None and response.status:
                # The body ended before its first chunk: it is whole, and empty.
                plan = response.decide()
                response.commit(plan, response.whole_coding(plan, 0))
            compressor = response.compressor
            if compressor is None:
                raise  # sent as is (or no start_response at all: the server reports it)
            return compressor.last()
        if response.plan is None:
            response.commit_streaming()
        compressor = response.compressor
        out = chunk if compressor is None else compressor.chunk(chunk)
        if out:
            response.emitted = True
        return out

    def close(self) -> None:
        self._done = True
        _close(self._result)
