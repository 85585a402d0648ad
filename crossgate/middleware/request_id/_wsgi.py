"""`WSGIRequestID`, the WSGI side of `crossgate.middleware.request_id`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from crossgate.middleware._common import close_result
from crossgate.middleware.proxy_headers import PEER_KEY
from crossgate.middleware.request_id._options import (
    SCOPE_KEY,
    RequestIDBase,
    RequestIDOptions,
    request_id_var,
    status_without_response,
)
from crossgate.sansio.request_id import wsgi_target
from crossgate.sansio.response import OptExcInfo
from crossgate.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["WSGIRequestID"]


class WSGIRequestID(RequestIDBase[WSGIApplication]):
    """WSGI middleware: the sibling of `RequestID`, with the same options.

    The id goes into ``environ["crossgate.request_id"]``, replaces the request header's
    ``HTTP_*`` entry, goes on the response (replacing a value the app set), and is
    `current_request_id` during every call into the app: the call itself, each step of its
    iterable, and ``close()``. The access line is written when the server calls ``close()``
    (PEP 3333 requires it, even after an error or an early disconnect), or at once when the app
    raises. A response that is a ``wsgi.file_wrapper`` is returned unwrapped, so the server's
    file fast path still works; its line is written when the app returns, with the
    ``Content-Length`` as its byte count.

    Raises:
        ValueError: as for `RequestID`.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        options = self.options
        key = options.environ_key
        # Behind WSGIProxyHeaders, trust is about the proxy that spoke, not the client it reported.
        peer = environ.get(PEER_KEY, environ.get("REMOTE_ADDR")) or None
        request_id = options.choose(peer, environ.get(key))
        # Changed in place, as WSGI middleware do: middleware further out (an error reporter)
        # find the id in the environ too.
        environ[key] = request_id
        environ[SCOPE_KEY] = request_id
        access = _Access(options, environ, request_id, started, start_response)
        token = request_id_var.set(request_id)
        try:
            result = self.app(environ, access.start_response)
        except Exception:
            access.error = True
            access.finish()
            raise
        finally:
            request_id_var.reset(token)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(result, wrapper):
            access.complete = True
            access.sent = access.content_length
            access.finish()
            return result
        return _LoggedIterable(access, result)


class _Access:
    """What `WSGIRequestID` learns about one response, and its access line."""

    __slots__ = (
        "complete",
        "content_length",
        "emitted",
        "environ",
        "error",
        "logged",
        "options",
        "real",
        "request_id",
        "sent",
        "started",
        "status",
        "writer",
    )

    def __init__(
        self,
        options: RequestIDOptions,
        environ: WSGIEnvironment,
        request_id: str,
        started: float,
        start_response: StartResponse,
    ) -> None:
        self.options = options
        self.environ = environ
        self.request_id = request_id
        self.started = started
        self.real = start_response
        self.status: int | None = None
        self.content_length = 0
        self.sent = 0
        self.emitted = False
        self.complete = False
        self.error = False
        self.logged = False
        self.writer: Any = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        options = self.options
        lower = options.header.lower()
        kept = [h for h in headers if h[0].lower() != lower]
        kept.append((options.header, self.request_id))
        self.writer = self.real(status, kept, exc_info)
        code = status[:3]
        self.status = int(code) if code.isdigit() else None
        for name, value in headers:
            if name.lower() == "content-length" and value.strip().isdigit():
                self.content_length = int(value)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write`` callable (PEP 3333), counted."""
        self.writer(data)
        self.sent += len(data)
        self.emitted = self.emitted or bool(data)

    def finish(self) -> None:
        """Write the access line, once."""
        if self.logged:
            return
        self.logged = True
        if not self.options.enabled():
            return
        environ = self.environ
        outcome = "app error" if self.error else "" if self.complete else "client disconnected"
        status = self.status
        if status is None or (self.error and not self.emitted):
            # Nothing went out: the server answers an error with a 500 of its own.
            status = status_without_response(self.error, outcome == "client disconnected")
        address = environ.get("REMOTE_ADDR") or None
        port = environ.get("REMOTE_PORT")
        protocol = str(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))
        self.options.log(
            request_id=self.request_id,
            client=f"{address}:{port}" if address and port else address,
            method=str(environ.get("REQUEST_METHOD", "GET")),
            path=wsgi_target(environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")),
            query=str(environ.get("QUERY_STRING", "")),
            http_version=protocol.removeprefix("HTTP/"),
            status=status,
            sent=self.sent,
            started=self.started,
            outcome=outcome,
        )


class _LoggedIterable:
    """The app's iterable, with the request id set around each step and the line on close."""

    __slots__ = ("_access", "_iterator", "_result")

    def __init__(self, access: _Access, result: Iterable[bytes]) -> None:
        self._access = access
        self._result = result
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> _LoggedIterable:
        return self

    def __next__(self) -> bytes:
        access = self._access
        token = request_id_var.set(access.request_id)
        try:
            if self._iterator is None:
                self._iterator = iter(self._result)
            chunk = next(self._iterator)
        except StopIteration:
            access.complete = True
            raise
        except Exception:
            access.error = True
            raise
        finally:
            request_id_var.reset(token)
        access.sent += len(chunk)
        if chunk:
            access.emitted = True
        return chunk

    def close(self) -> None:
        access = self._access
        token = request_id_var.set(access.request_id)
        try:
            close_result(self._result)
        except Exception:
            access.error = True
            raise
        finally:
            access.finish()
            request_id_var.reset(token)
