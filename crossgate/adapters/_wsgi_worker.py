"""One request on a worker thread: run the WSGI app and hand its response to the `WorkerExchange`.

PEP 3333 on this side (``start_response``, ``write``, the iterable and its ``close()``); the
event loop sends what `WorkerExchange` queues. What the response may be (the status and headers,
``Content-Length`` promises, when a file goes by pathsend) is `crossgate.sansio.response`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from crossgate.adapters._exchange import WorkerExchange
from crossgate.adapters._streams import ErrorStream, FileWrapper, regular_file
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
    """Run ``app`` for one request; report everything through ``exchange``.

    ``extensions`` are the scope's: the server's pathsend / zerocopysend may send a file."""
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

    def write(data: bytes) -> None:
        # PEP 3333, "The write() Callable": kept for legacy apps; it blocks while the
        # client is too far behind, as the PEP allows.
        if type(data) is not bytes:
            data = body_chunk(data)
        if data:
            _emit(exchange, state, data)
        else:
            exchange.check_connected()

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
            # The whole body is known: it goes out with the end of the response, in one
            # message and one wake-up of the loop.
            tail = _clamp(state, _join(iterable))
        elif not _send_file(exchange, state, iterable, extensions):
            for chunk in iterable:
                if type(chunk) is not bytes:
                    chunk = body_chunk(chunk)
                if chunk:
                    if _emit(exchange, state, chunk):
                        break
                else:
                    # PEP 3333: an empty chunk must not send the headers. A long poll
                    # yields them while it waits: each is where it learns that the
                    # client left, so that it is closed as promptly as one that sends.
                    exchange.check_connected()
    except BaseException as exc:
        failure = exc
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                if failure is None:
                    # close() is the app's (PEP 3333), and the body is complete: the
                    # response is sent whole, then this is the app's exception after a
                    # complete response (an ASGIToWSGI inside raises from close() what its
                    # app raised after answering: Starlette's ServerErrorMiddleware).
                    late = exc
                else:
                    # The app already failed; that failure is the one answered.
                    _log.exception("the WSGI iterable's close() raised")
        errors.flush()
    if failure is None and state.shortfall():
        failure = AppProtocolError(
            f"the app sent {state.shortfall()} bytes fewer than its Content-Length"
        )
    try:
        _report(exchange, state, failure, tail, late)
    finally:
        # The exception's traceback holds this frame, which holds the exception: a cycle
        # that would keep the request (its read-ahead bytes, the environ) alive until the
        # cyclic garbage collector happens to run, long after a client left mid-upload.
        failure = late = None


def _join(chunks: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A list or tuple body in one piece; `AppProtocolError` names a chunk that is not bytes."""
    try:
        return b"".join(chunks)
    except TypeError:
        return b"".join([body_chunk(chunk) for chunk in chunks])


def _clamp(state: ResponseState, chunk: bytes) -> bytes:
    data, dropped, _ = state.clamp(chunk)
    if dropped:
        _log.warning(
            "the app sent %d bytes past its Content-Length of %d; dropped them",
            dropped,
            state.content_length,
        )
    return data


def _emit(exchange: WorkerExchange, state: ResponseState, chunk: bytes) -> bool:
    """Queue a body chunk; True once ``Content-Length`` bytes went out."""
    data = _clamp(state, chunk)
    exchange.push(None if state.committed else state.commit(), data)
    return state.content_length is not None and state.sent >= state.content_length


def _send_file(
    exchange: WorkerExchange,
    state: ResponseState,
    iterable: Iterable[bytes],
    extensions: Mapping[str, object],
) -> bool:
    """Hand a ``wsgi.file_wrapper`` file to the server's pathsend / zerocopysend extension;
    False to iterate the wrapper instead (`file_send_event` decides)."""
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


def _report(
    exchange: WorkerExchange,
    state: ResponseState,
    failure: BaseException | None,
    tail: bytes,
    late: Exception | None = None,
) -> None:
    """Hand the end of the response to the loop. A failure is decided and logged there
    (`WorkerExchange.respond`), where it is known whether the headers reached the server.
    ``late`` is what ``close()`` raised after a complete body."""
    if failure is None:
        try:
            start = None if state.committed else state.commit()
            exchange.finish(start=start, data=tail, late=late)
            return
        except AppProtocolError as exc:  # start_response() was never called
            failure = exc
    if late is not None:
        _log.error("the WSGI iterable's close() raised", exc_info=late)
    exchange.finish(failure)
