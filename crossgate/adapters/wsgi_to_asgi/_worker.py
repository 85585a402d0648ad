"""One request on a worker thread: run the WSGI app (PEP 3333: ``start_response``, ``write``,
the iterable and its ``close()``) and hand its response to the `WorkerExchange`. What the
response may be is `crossgate.sansio.response`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from crossgate.adapters._streams import ErrorStream, FileWrapper, regular_file
from crossgate.adapters.wsgi_to_asgi._exchange import WorkerExchange
from crossgate.concurrency import set_server_loop
from crossgate.exceptions import AppProtocolError
from crossgate.sansio.response import OptExcInfo, ResponseState, body_chunk, file_send_event
from crossgate.types import WSGIApplication, WSGIEnvironment, as_message

__all__ = ["run_request"]

_log = logging.getLogger("crossgate")

_FILE_EVENTS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


def run_request(
    app: WSGIApplication,
    exchange: WorkerExchange,
    environ: WSGIEnvironment,
    extensions: Mapping[str, object],
) -> None:
    """Run ``app`` for one request; report everything through ``exchange``. ``extensions``
    are the scope's (pathsend / zerocopysend may send a file)."""
    if not exchange.begin():
        return  # it waited too long and got a 503 instead
    try:
        _run_app(app, exchange, environ, extensions)
    except BaseException as exc:  # pragma: no cover - a crossgate bug must not hang
        _log.critical("crossgate failed while running a request", exc_info=exc)
        exchange.finish(exc)


def _run_app(
    app: WSGIApplication,
    exchange: WorkerExchange,
    environ: WSGIEnvironment,
    extensions: Mapping[str, object],
) -> None:
    set_server_loop(exchange.loop)
    state = ResponseState(environ["REQUEST_METHOD"])
    errors: ErrorStream = environ["wsgi.errors"]

    def write(data: bytes) -> bool:
        """PEP 3333's ``write()`` (it may block while the client is too far behind), and each
        chunk of the iterable; True once ``Content-Length`` bytes went out."""
        if type(data) is not bytes:
            data = body_chunk(data)
        if not data:
            # PEP 3333: an empty chunk must not send the headers. A long poll yields them
            # while it waits: this is where it learns that the client left.
            exchange.check_connected()
            return False
        data, complete = _clamp(state, data)
        exchange.push(None if state.committed else state.commit(), data)
        return complete

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        state.start(status, headers, exc_info)
        return write

    iterable: Iterable[bytes] | None = None
    failure: BaseException | None = None
    late: Exception | None = None
    tail = b""
    try:
        iterable = app(environ, start_response)
        if type(iterable) is list or type(iterable) is tuple:
            # The whole body goes out with the end of the response: one wake-up of the loop.
            try:
                tail = b"".join(iterable)
            except TypeError:  # body_chunk raises AppProtocolError for a chunk not bytes
                tail = b"".join([body_chunk(chunk) for chunk in iterable])
            tail, _ = _clamp(state, tail)
        elif not _send_file(exchange, state, iterable, extensions):
            for chunk in iterable:
                if write(chunk):
                    break
    except BaseException as exc:
        failure = exc
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                if failure is None:
                    # Sent whole, then raised (ASGIToWSGI raises so after its app answered).
                    late = exc
                else:  # the app's first failure is the one answered
                    _log.exception("the WSGI iterable's close() raised")
        errors.flush()
    if failure is None and state.shortfall():
        failure = AppProtocolError(
            f"the app sent {state.shortfall()} bytes fewer than its Content-Length"
        )
    # A failure is decided on the loop, which knows whether the headers reached the server.
    try:
        if failure is None:
            try:
                exchange.finish(
                    start=None if state.committed else state.commit(), data=tail, late=late
                )
                return
            except AppProtocolError as exc:  # start_response() was never called
                failure = exc
        if late is not None:
            _log.error("the WSGI iterable's close() raised", exc_info=late)
        exchange.finish(failure)
    finally:
        # The traceback holds this frame: no cycle keeps the request until the next cyclic GC.
        failure = late = None


def _clamp(state: ResponseState, chunk: bytes) -> tuple[bytes, bool]:
    """``chunk`` cut to the ``Content-Length``, and whether the body is now complete."""
    data, dropped, complete = state.clamp(chunk)
    if dropped:
        _log.warning(
            "the app sent %d bytes past its Content-Length of %d; dropped them",
            dropped,
            state.content_length,
        )
    return data, complete


def _send_file(
    exchange: WorkerExchange,
    state: ResponseState,
    iterable: Iterable[bytes],
    extensions: Mapping[str, object],
) -> bool:
    """Hand a ``wsgi.file_wrapper`` file to the server's pathsend / zerocopysend; False to
    iterate it instead."""
    if not isinstance(iterable, FileWrapper) or not extensions.keys() & _FILE_EVENTS:
        return False
    found = regular_file(iterable)
    if found is None:
        return False
    event = file_send_event(state, extensions, **found)
    if event is None:
        return False
    exchange.push_file(state.commit(), as_message(event))
    return True
