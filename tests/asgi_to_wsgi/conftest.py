"""Fixtures and a small in-process WSGI server for driving ASGIToWSGI.

``run_wsgi`` plays the WSGI server: it builds a PEP 3333 environ, calls the adapter wrapped in
``wsgiref.validate.validator`` (which checks both sides of PEP 3333 as the call goes), consumes
the iterable and always calls ``close()``, as a server must.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.sansio.response import OptExcInfo
from crossgate.types import ASGIApp, WSGIApplication
from tests.adapters.conftest import thread_leak_check

__all__ = [
    "MODES",
    "Input",
    "MakeAdapter",
    "Mode",
    "WSGIResult",
    "ignore_start",
    "run_wsgi",
    "thread_leak_check",
    "wait_until",
]

MODES = ["inline", "shared"]

# What a WSGI server's start_response receives as exc_info.
ExcInfo = OptExcInfo | None


class Input:
    """A ``wsgi.input`` over ``data`` that records every read the adapter makes.

    ``end`` says what happens once ``data`` is used up: ``"eof"`` returns ``b""`` (a client
    that sent everything, or one that left early when ``CONTENT_LENGTH`` promised more), or an
    exception instance to raise (a broken connection). Reading past ``limit`` bytes (the
    ``CONTENT_LENGTH`` the test declares) fails the test: PEP 3333 forbids it, and on a real
    server such a read blocks for ever.
    """

    def __init__(
        self, data: bytes = b"", *, end: str | BaseException = "eof", limit: int | None = None
    ) -> None:
        self._data = io.BytesIO(data)
        self._end = end
        self._limit = limit
        self.position = 0
        self.sizes: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.sizes.append(size)
        if self._limit is not None:
            assert size >= 0, "read() without a size under a CONTENT_LENGTH"
            assert self.position + size <= self._limit, "read past CONTENT_LENGTH"
        data = self._data.read(size)
        self.position += len(data)
        if not data and size != 0 and isinstance(self._end, BaseException):
            raise self._end
        return data

    def readline(self, size: int = -1) -> bytes:
        raise AssertionError("the adapter reads wsgi.input with read() only")

    def readlines(self, hint: int = -1) -> list[bytes]:
        raise AssertionError("the adapter reads wsgi.input with read() only")

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the adapter reads wsgi.input with read() only")


@dataclass
class WSGIResult:
    """What the fake WSGI server saw."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    start_calls: list[tuple[str, ExcInfo]] = field(default_factory=list)
    error: BaseException | None = None
    call_error: BaseException | None = None
    iterable: Iterable[bytes] | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def code(self) -> int:
        return int(self.status[:3])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def make_environ(
    method: str = "GET",
    path: str = "/",
    *,
    query: str = "",
    body: bytes | Input = b"",
    content_length: int | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PEP 3333 environ (wsgiref's testing defaults plus these values)."""
    stream = body if isinstance(body, Input) else Input(body, limit=len(body))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
    }
    if content_length is None and not isinstance(body, Input) and body:
        content_length = len(body)
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(extra or {})
    setup_testing_defaults(environ)
    return environ


def run_wsgi(
    app: WSGIApplication,
    environ: dict[str, Any] | None = None,
    *,
    validate: bool = True,
    stop_after: int | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
    catch_call: bool = False,
    **environ_args: Any,
) -> WSGIResult:
    """Serve one request with ``app`` as a WSGI server would; return what it saw.

    ``stop_after`` stops iterating after that many chunks (a client that left); the iterable's
    ``close()`` is called in every case (PEP 3333). An exception from the iterable (or from
    ``close()``) is kept in ``WSGIResult.error``; one from the application call too with
    ``catch_call`` (``WSGIResult.call_error``), else it propagates.
    """
    if environ is None:
        environ = make_environ(**environ_args)
    result = WSGIResult()

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: ExcInfo = None
    ) -> Callable[[bytes], object]:
        result.start_calls.append((status, exc_info))
        result.status, result.headers = status, headers
        return result.chunks.append

    served = validator(app) if validate else app
    try:
        iterable = served(environ, start_response)
    except Exception as exc:
        if not catch_call:
            raise
        result.call_error = exc
        return result
    result.iterable = iterable
    try:
        try:
            for chunk in iterable:
                result.chunks.append(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
                if stop_after is not None and len(result.chunks) >= stop_after:
                    break
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        result.error = exc
    return result


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout`` seconds (never asserted on
    as a duration: it only bounds the wait for something that happens on another thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def ignore_start(
    status: str, headers: list[tuple[str, str]], exc_info: ExcInfo = None
) -> Callable[[bytes], object]:
    """A ``start_response`` for tests that drive the iterable by hand."""
    return lambda data: None


class MakeAdapter(Protocol):
    def __call__(self, app: ASGIApp, **options: Any) -> ASGIToWSGI: ...


Mode = Literal["inline", "shared"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    """Each test using it runs in inline and in shared mode."""
    value: Mode = request.param
    return value


@pytest.fixture
def make_adapter(thread_leak_check: None, mode: Mode) -> Iterator[MakeAdapter]:
    """Build adapters in the test's mode; shut them all down (and check for leaks) after."""
    made: list[ASGIToWSGI] = []

    def make(app: ASGIApp, **options: Any) -> ASGIToWSGI:
        options.setdefault("mode", mode)
        adapter = ASGIToWSGI(app, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.shutdown()
