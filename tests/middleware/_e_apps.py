"""Apps and drivers for the body middleware tests (BodyLimit, GZip, RequestID).

`tests.middleware._sides` runs a request through both sides with a recording app that answers a
fixed reply. These tests also need apps that stream, read their body in odd ways or break, and a
WSGI driver that shows every chunk and the ``close()`` call; they are here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.validate import validator

from crossgate.sansio.environ import build_environ
from crossgate.testing import http_scope
from crossgate.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ClosingIterable",
    "WSGIResult",
    "call_wsgi",
    "make_environ",
    "text_app",
]


def make_environ(
    method: str = "GET",
    path: str = "/",
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    stream: Any = None,
    terminated: bool = True,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    query_string: bytes = b"",
) -> dict[str, Any]:
    """An environ as `WSGIToASGI` builds it, with ``body`` (or ``stream``) as ``wsgi.input``.

    ``terminated=False`` drops ``wsgi.input_terminated``, as servers that only honour
    ``CONTENT_LENGTH`` do.
    """
    scope = http_scope(method, path, headers=headers, client=client, query_string=query_string)
    environ = build_environ(scope)
    environ["wsgi.input"] = io.BytesIO(body) if stream is None else stream
    environ["wsgi.errors"] = io.StringIO()
    if not terminated:
        del environ["wsgi.input_terminated"]
    return environ


@dataclass
class WSGIResult:
    """What a WSGI server saw: every ``start_response`` call, every chunk, what ``write`` got."""

    starts: list[tuple[str, list[tuple[str, str]], Any]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)
    result: Any = None

    @property
    def status(self) -> int:
        return int(self.starts[-1][0][:3])

    @property
    def headers(self) -> dict[str, str]:
        """The last headers, lower-case names (repeated ones joined with ``", "``)."""
        joined: dict[str, str] = {}
        for name, value in self.starts[-1][1]:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        return joined

    @property
    def body(self) -> bytes:
        return b"".join(self.written) + b"".join(self.chunks)


def call_wsgi(
    app: WSGIApplication,
    environ: WSGIEnvironment,
    *,
    validate: bool = True,
    on_chunk: Callable[[bytes], None] | None = None,
    stop_after: int | None = None,
) -> WSGIResult:
    """Call ``app`` as a server does: iterate the result, then always ``close()`` it.

    ``validate`` wraps ``app`` in `wsgiref.validate.validator` (which also checks that
    ``close()`` is called). ``on_chunk`` sees each chunk as it arrives, before the next one is
    asked for; ``stop_after`` stops iterating after that many chunks, as when a client leaves.
    """
    outcome = WSGIResult()

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and outcome.chunks:
            raise exc_info[1].with_traceback(exc_info[2])
        outcome.starts.append((status, headers, exc_info))
        return outcome.written.append

    wrapped = validator(app) if validate else app
    result = wrapped(environ, start_response)
    outcome.result = result
    try:
        for chunk in result:
            outcome.chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
            if stop_after is not None and len(outcome.chunks) >= stop_after:
                break
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return outcome


class ClosingIterable:
    """A WSGI response iterable that records whether ``close()`` was called."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)
        self.closed = False
        self.served = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.served += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


def text_app(
    body: bytes | Iterable[bytes],
    *,
    status: str = "200 OK",
    headers: Iterable[tuple[str, str]] = (("Content-Type", "text/plain"),),
) -> WSGIApplication:
    """A WSGI app answering ``body``: ``bytes`` as a one-item list, else the iterable as given."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, list(headers))
        return [body] if isinstance(body, bytes) else body

    return app
