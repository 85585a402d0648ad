"""`WSGIGZip`, the WSGI side of `crossgate.middleware.gzip`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from crossgate.exceptions import AppProtocolError
from crossgate.middleware._common import close_result
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
from crossgate.sansio.response import OptExcInfo
from crossgate.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["WSGIGZip"]


class WSGIGZip(GZipBase[WSGIApplication]):
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
        facts = response_facts(int(code) if code.isdigit() else 500, self.headers)
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
            headers = planned_headers(headers, plan, coding, length, _wsgi_pair)
        self.writer = self.real(self.status, headers, self.exc_info)

    def commit_streaming(self) -> None:
        """Commit for a body of unknown size, now that its first bytes are here."""
        plan = self.decide()
        streamed = plan.action is Action.COMPRESS or plan.action is Action.WAIT
        self.commit(plan, plan.coding if streamed else None)

    def write(self, data: bytes) -> None:
        """The ``write`` callable (PEP 3333): the body so far is a stream."""
        out = self.encode(data)
        if out:
            self.writer(out)

    def encode(self, data: bytes) -> bytes:
        """A chunk of a body of unknown size, compressed when the plan says so."""
        if self.plan is None:
            self.commit_streaming()
        compressor = self.compressor
        out = data if compressor is None else compressor.chunk(data)
        if out:
            self.emitted = True
        return out

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
            close_result(result)
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

    def __init__(self, response: _GZipWSGIResponse, result: Iterable[bytes]) -> None:
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
        return response.encode(chunk)

    def close(self) -> None:
        self._done = True
        close_result(self._result)
