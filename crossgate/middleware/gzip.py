"""`GZip` / `WSGIGZip`: compress responses with gzip or brotli, flushing every chunk; what to
compress is `crossgate.sansio.gzip`'s decision."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any, AnyStr, Generic
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from crossgate.exceptions import AppProtocolError
from crossgate.middleware._common import App, close_result, first_header
from crossgate.sansio.gzip import (
    DEFAULT_EXCLUDED_TYPES,
    Action,
    Plan,
    ResponseFacts,
    compresses_at,
    negotiate,
    plan_response,
    planned_headers,
    response_facts,
)
from crossgate.sansio.gzip_codec import Compressor, brotli_available
from crossgate.sansio.response import OptExcInfo
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message

__all__ = ["GZip", "WSGIGZip"]

# ASGI spec, "Extensions": the app may hand the body to the server as a file, uncompressed.
_FILE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopysend")


class _GZipBase(Generic[App]):
    def __init__(
        self,
        app: App,
        *,
        minimum_size: int = 500,
        compresslevel: int = 6,
        brotli: bool | None = None,
        brotli_quality: int = 4,
        excluded_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
        max_random_bytes: int = 0,
    ) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be 0 or more, not {minimum_size}")
        if isinstance(max_random_bytes, bool) or max_random_bytes < 0:
            raise ValueError(f"max_random_bytes must be 0 or more, not {max_random_bytes!r}")
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be between 0 and 9, not {compresslevel}")
        if not 0 <= brotli_quality <= 11:
            raise ValueError(f"brotli_quality must be between 0 and 11, not {brotli_quality}")
        if max_random_bytes and brotli:
            raise ValueError(
                "max_random_bytes pads gzip only (brotli has no field for it): pass brotli=False"
            )
        if brotli and not brotli_available():
            raise ValueError("brotli=True needs the brotli package: pip install brotli")
        use_brotli = (brotli_available() if brotli is None else brotli) and not max_random_bytes
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.brotli_quality = brotli_quality
        self.max_random_bytes = max_random_bytes
        self.codings = ("br", "gzip") if use_brotli else ("gzip",)
        self.excluded_types = frozenset(t.strip().lower() for t in excluded_types)


class _Response:
    """One response through either side: its plan, and its compressor once committed."""

    compressor: Compressor | None = None

    def __init__(self, options: _GZipBase[Any], method: str, coding: str | None) -> None:
        self.options = options
        self.method = method
        self.coding = coding

    def plan(self, facts: ResponseFacts, *, wait: bool = False) -> Plan:
        return plan_response(
            facts,
            method=self.method,
            coding=self.coding,
            minimum_size=self.options.minimum_size,
            excluded_types=self.options.excluded_types,
            wait_for_body=wait,
        )

    def coding_for(self, plan: Plan, size: int, *, complete: bool) -> str | None:
        """The coding for a body whose first ``size`` bytes are here, or ``None``."""
        minimum_size = self.options.minimum_size
        wait = plan.action is Action.WAIT
        if wait and not compresses_at(size, complete=complete, minimum_size=minimum_size):
            return None
        return plan.coding

    def new_compressor(self, coding: str) -> Compressor:
        limit = self.options.max_random_bytes
        return Compressor(
            coding,
            level=self.options.compresslevel,
            brotli_quality=self.options.brotli_quality,
            padding=secrets.randbelow(limit + 1) if limit else None,
        )

    def commit(
        self,
        headers: Iterable[tuple[AnyStr, AnyStr]],
        plan: Plan,
        coding: str | None,
        length: int | None,
        pair: Callable[[str, str], tuple[AnyStr, AnyStr]],
    ) -> list[tuple[AnyStr, AnyStr]]:
        """``headers`` with ``plan`` applied; a compressor unless the body is compressed whole."""
        if coding is not None and length is None:
            self.compressor = self.new_compressor(coding)
        return planned_headers(headers, plan, coding, length, pair)


def _asgi_pair(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("latin-1")


def _wsgi_pair(name: str, value: str) -> tuple[str, str]:
    return name, value


class GZip(_GZipBase[ASGIApp]):
    """ASGI middleware: compress ``http`` responses with gzip, or brotli when preferred; the
    options and rules are in [Middleware: GZip](middleware.md#gzip).

    Raises:
        ValueError: an option out of range, ``brotli=True`` without the package or with
            ``max_random_bytes``.
    """

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extensions = scope.get("extensions") or {}
        wait = any(name in extensions for name in _FILE_EXTENSIONS)
        coding = negotiate(first_header(scope["headers"], b"accept-encoding"), self.codings)
        response = _Response(self, scope.get("method", "GET"), coding)
        started = False
        held: tuple[Message, Plan] | None = None  # a start, until the first body message

        async def commit(
            start: Message, plan: Plan, coding: str | None, length: int | None
        ) -> None:
            headers = response.commit(start.get("headers", ()), plan, coding, length, _asgi_pair)
            await send({**start, "headers": headers})

        async def compressing_send(message: Message) -> None:
            nonlocal started, held
            compressor = response.compressor
            if compressor is not None:
                if message["type"] != "http.response.body":
                    raise AppProtocolError(
                        f"{message['type']!r} cannot follow a compressed http.response.start; "
                        "only http.response.body can"
                    )
                body = message.get("body", b"")
                if message.get("more_body", False):
                    # An empty message goes on empty (apps send them to test the connection).
                    body = compressor.chunk(body)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                else:
                    response.compressor = None  # the response is complete
                    await send({"type": "http.response.body", "body": compressor.last(body)})
            elif held is not None:
                start, plan = held
                held = None
                body = message.get("body", b"")
                more = bool(message.get("more_body", False))
                chosen = None  # a file handed to the server (pathsend / zerocopysend) goes as is
                if message["type"] == "http.response.body":
                    chosen = response.coding_for(plan, len(body), complete=not more)
                if chosen is not None and not more:
                    compressed = response.new_compressor(chosen).last(body)
                    await commit(start, plan, chosen, len(compressed))
                    await send({"type": "http.response.body", "body": compressed})
                else:
                    await commit(start, plan, chosen, None)
                    await compressing_send(message)
            elif not started and message["type"] == "http.response.start":
                started = True
                status = int(message.get("status", 200))
                trailers = bool(message.get("trailers"))
                facts = response_facts(status, message.get("headers", ()), trailers=trailers)
                plan = response.plan(facts, wait=wait)
                if plan.action is Action.SKIP:
                    await send(message)
                elif plan.action is Action.WAIT:
                    held = (message, plan)
                else:
                    await commit(message, plan, plan.coding, None)
            else:
                await send(message)  # passed on as is (out of order: the server reports it)

        await self.app(scope, receive, compressing_send)


class WSGIGZip(_GZipBase[WSGIApplication]):
    """WSGI middleware: the sibling of `GZip`, with the same options.

    Raises:
        ValueError: as for `GZip`.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        coding = negotiate(environ.get("HTTP_ACCEPT_ENCODING"), self.codings)
        method = environ.get("REQUEST_METHOD", "GET")
        response = _GZipWSGIResponse(self, method, coding, start_response)
        result = self.app(environ, response.start_response)
        try:
            return response.wrap(result)
        except BaseException:
            close_result(result)
            raise


class _GZipWSGIResponse(_Response):
    """One response through `WSGIGZip`; PEP 3333 lets ``start_response`` wait for the plan."""

    status = ""  # "" until start_response is called
    headers: list[tuple[str, str]]  # set with status
    exc_info: OptExcInfo | None = None
    planned = False  # the real start_response was called
    writer: Any = None
    emitted = False  # non-empty body bytes went to the server
    result: Iterable[bytes] = ()

    def __init__(
        self, options: WSGIGZip, method: str, coding: str | None, start_response: StartResponse
    ) -> None:
        super().__init__(options, method, coding)
        self.real = start_response

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        if exc_info is not None and exc_info[1] is not None:
            if self.emitted:
                # PEP 3333 ("Error Handling"): the headers are out, so re-raise.
                raise exc_info[1].with_traceback(exc_info[2])
            self.planned = False  # not sent yet: decide again for the error response
            self.compressor = None
        elif self.status:
            raise AppProtocolError(
                "start_response() was called a second time without exc_info (PEP 3333)"
            )
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.write

    def decide(self) -> Plan:
        if not self.status:
            raise AppProtocolError(
                "the application produced a body without calling start_response()"
            )
        code = self.status[:3]
        return self.plan(response_facts(int(code) if code.isdigit() else 500, self.headers))

    def start(self, plan: Plan, coding: str | None, length: int | None = None) -> None:
        self.planned = True
        headers = self.headers
        if plan.action is not Action.SKIP:
            headers = self.commit(headers, plan, coding, length, _wsgi_pair)
        self.writer = self.real(self.status, headers, self.exc_info)

    def write(self, data: bytes) -> None:
        out = self.encode(data)
        if out:
            self.writer(out)

    def encode(self, data: bytes) -> bytes:
        if not self.planned:
            plan = self.decide()
            self.start(plan, self.coding_for(plan, len(data), complete=False))
        out = data if self.compressor is None else self.compressor.chunk(data)
        self.emitted = self.emitted or bool(out)
        return out

    def wrap(self, result: Iterable[bytes]) -> Iterable[bytes]:
        self.result = result
        if self.planned or not self.status:
            return self  # write() was used, or start_response comes with the first chunk
        plan = self.decide()
        if isinstance(result, list | tuple):
            coding = self.coding_for(plan, sum(map(len, result)), complete=True)
            if coding is None:
                self.start(plan, None)
                return result
            compressed = self.new_compressor(coding).last(b"".join(result))
            close_result(result)
            self.start(plan, coding, len(compressed))
            return [compressed]
        if plan.action is not Action.WAIT:
            self.start(plan, plan.coding)
            if plan.coding is None:
                return result  # the app's own object: wsgi.file_wrapper keeps its fast path
        return self

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.result:
            yield self.encode(chunk)
        if not self.planned and self.status:
            plan = self.decide()  # the body ended before its first chunk
            self.start(plan, self.coding_for(plan, 0, complete=True))
        if self.compressor is not None:
            yield self.compressor.last()

    def close(self) -> None:
        close_result(self.result)
