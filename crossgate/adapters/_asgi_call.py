"""The engine of `ASGIToWSGI`, which its inline and shared modes share: the request body read
from ``wsgi.input``, the app's ``receive`` and ``send``, the WSGI iterable and ``close()``, and
the answer for an app that did not complete its response. A mode says only how the app's task
and the WSGI thread meet (`Call`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, TypeVarTuple

from crossgate.adapters._streams import FILE_BLOCK_SIZE
from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    CrossgateError,
    PeerProtocolError,
    RequestTooLarge,
    ResponseAborted,
)
from crossgate.sansio.asgi_response import Body, ResponseCycle, SendFile, Start, error_response
from crossgate.sansio.failure import (
    FailurePlan,
    Outcome,
    RaisePoint,
    plan_failure,
    wsgi_raise_point,
)
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["BODY", "DONE", "END", "FILE", "START", "Call", "Options", "client_gone", "resolve"]

_log = logging.getLogger("crossgate")

Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class Options:
    """The per-request settings of an `ASGIToWSGI` (see its docstring)."""

    read_size: int
    send_buffer: int
    max_body_size: int | None
    background_timeout: float
    disconnect_grace: float
    raise_app_exceptions: bool = True


def _exc_info(error: BaseException) -> tuple[type[BaseException], BaseException, TracebackType]:
    """``error`` as ``sys.exc_info()`` would give it, for ``start_response``'s ``exc_info``."""
    traceback = error.__traceback__
    if traceback is None:  # made here, never raised: raise it once to give it a traceback
        try:
            raise error
        except BaseException as raised:
            traceback = raised.__traceback__
    if traceback is None:  # pragma: no cover - a raised exception always has one
        raise error
    return type(error), error, traceback


def client_gone() -> ClientDisconnected:
    """The error ``send()`` raises once the client is gone (ASGI HTTP spec 2.4: an OSError)."""
    return ClientDisconnected("the client disconnected; the response cannot be sent")


def wrap_file(call: Call, file: IO[bytes], file_wrapper: Any) -> Iterable[bytes] | None:
    """The server's ``wsgi.file_wrapper`` around ``file``, whose ``close()`` also closes ``call``.

    The server recognises its own wrapper (gunicorn sends it with ``sendfile()``), so the
    wrapper itself must be the iterable; ``call.close()`` then runs from the wrapper's, which
    the server calls when done (PEP 3333). ``None`` when the wrapper takes no extra ``close``.
    """
    wrapper = file_wrapper(file, FILE_BLOCK_SIZE)
    inner = getattr(wrapper, "close", None)

    def close() -> None:
        try:
            if inner is not None:
                inner()
        finally:
            call.close()

    try:
        wrapper.close = close
    except (AttributeError, TypeError):
        return None
    result: Iterable[bytes] = wrapper
    return result


# What the loop side tells the WSGI side (`Call.emit`): the response started, a body chunk,
# the response is complete, a file to send (pathsend), the app ended.
START, BODY, END, FILE, DONE = range(5)


def resolve(future: asyncio.Future[None] | None) -> None:
    """Wake whoever awaits ``future`` (on the loop), unless it is done already."""
    if future is not None and not future.done():
        future.set_result(None)


class Call(ABC):
    """One request, and the response iterable the WSGI server consumes: the one engine of
    both modes.

    The app's task (the loop side) runs ``receive``, ``send`` and `run`; it tells the WSGI
    side what happened with `emit`. The WSGI side (`begin`, ``__next__``, `close`) applies
    that (`take`) and waits for more with `wait`. A mode says only how the two sides meet:
    on one thread (`crossgate.adapters._asgi_inline.InlineCall`) or across two
    (`crossgate.adapters._asgi_shared.SharedCall`), by overriding `start_task`, `emit`,
    `wait`, `call_on_loop`, `timebox`, `next_piece` and `finish`.

    ``read_piece`` runs on the WSGI thread; the flags it sets (``too_large``, ``body_failed``)
    and those the app side sets (``violation``, ``error``, ``cancelled``) decide the answer
    `fail` gives when the app ends without completing its response.
    """

    __slots__ = (
        "app_done",
        "body_end",
        "body_failed",
        "cancelled",
        "closed",
        "complete",
        "cycle",
        "done_seen",
        "drain_waiter",
        "ended",
        "error",
        "file",
        "file_path",
        "file_wrapper",
        "gone",
        "headers_sent",
        "input",
        "input_closed",
        "late_error",
        "loop",
        "opts",
        "out",
        "piece_waiter",
        "received",
        "remaining",
        "sent",
        "start",
        "start_response",
        "taken",
        "task",
        "too_large",
        "violation",
        "waiters",
        "wsgi_started",
    )

    def __init__(
        self,
        opts: Options,
        loop: asyncio.AbstractEventLoop,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        self.opts = opts
        self.loop = loop
        self.input: Any = environ["wsgi.input"]
        self.file_wrapper: Any = environ.get("wsgi.file_wrapper")
        self.file_path: str | None = None
        self.file: IO[bytes] | None = None
        self.start_response = start_response
        self.remaining = length
        self.received = 0
        self.body_end = False
        self.body_failed = False
        self.too_large = False
        self.cycle = ResponseCycle(head=environ.get("REQUEST_METHOD") == "HEAD")
        self.violation: AppProtocolError | None = None
        self.error: Exception | None = None
        # What the app raised after its complete response, kept until close() raises it to
        # the server (raise_app_exceptions).
        self.late_error: Exception | None = None
        self.cancelled = False
        self.wsgi_started = False
        self.headers_sent = False
        self.closed = False
        # Loop side. The response is complete (the last body message or a pathsend was sent);
        # the client is gone; the app's coroutine has ended; the server closed the response.
        self.task: asyncio.Task[None] | None = None
        self.complete = False
        self.gone = False
        self.app_done = False
        self.input_closed = False
        self.waiters: list[asyncio.Future[None]] = []
        self.piece_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.sent = 0
        # WSGI side: what `take` learnt from the loop side, and the body bytes handed over.
        self.start: Start | None = None
        self.out: list[bytes] = []
        self.taken = 0
        self.ended = False
        self.done_seen = False

    # -- the request body, on the WSGI thread ------------------------------------------------

    def read_piece(self) -> bytes | None:
        """Read the next piece of the request body from ``wsgi.input``.

        Returns the bytes, ``b""`` (with ``body_end`` set) once the body is over, or ``None``
        when the body cannot be had: the client left or the input failed (``body_failed``), or
        the body outgrew ``max_body_size`` (``too_large``). At most ``read_size`` bytes are read
        at a time and never past ``CONTENT_LENGTH`` (PEP 3333, "Input and Error Streams").
        """
        remaining = self.remaining
        if remaining == 0:
            self.body_end = True
            return b""
        size = self.opts.read_size if remaining is None else min(self.opts.read_size, remaining)
        try:
            data = self.input.read(size)
        except Exception as exc:
            # gunicorn raises NoMoreData (an IOError) when the client leaves mid-body and
            # InvalidChunkSize for a broken chunked body; wsgiref's socket raises OSError.
            _log.info("reading the request body failed: %r", exc)
            self.body_failed = True
            return None
        if not data:
            if remaining is None:
                self.body_end = True
                return b""
            _log.info("the request body ended %d bytes short of its Content-Length", remaining)
            self.body_failed = True
            return None
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) > size:  # an input that returns more than asked must not break the limit
            data = data[:size]
        self.received += len(data)
        limit = self.opts.max_body_size
        if limit is not None and self.received > limit:
            self.too_large = True
            return None
        if remaining is not None:
            self.remaining = remaining = remaining - len(data)
            self.body_end = remaining == 0
        return data

    # -- answering for an app that did not complete its response ----------------------------

    def log_late(self, exc: Exception, *, complete: bool) -> None:
        """Log an exception the app raised once its response no longer depended on it: after
        the response was complete, or after the client left."""
        if complete:
            # Work after the response (Starlette BackgroundTasks) failed: the client has its
            # answer, but the failure must not go unseen.
            _log.error("the ASGI app failed after its response was complete", exc_info=exc)
        else:
            # ASGI HTTP spec ("Disconnected Client"): the error send() raised for a client that
            # left is not to be logged as an error.
            _log.info("the ASGI app ended with %r after the client disconnected", exc)

    def _cause(self) -> BaseException:
        """Why the response failed: the request's fault first, then the app's."""
        if self.too_large:
            return RequestTooLarge.for_limit(self.opts.max_body_size or 0)
        if self.body_failed:
            return PeerProtocolError("the request body could not be read to its end")
        if self.violation is not None:
            return self.violation
        if self.error is not None:
            return self.error
        if self.cancelled:
            # The adapter's doing (shutdown, a grace period that ran out), not the app's bug.
            return CrossgateError("the ASGI app was cancelled before completing its response")
        return AppProtocolError("the ASGI app returned without completing its response")

    def _plan(self, error: BaseException, *, complete: bool = False) -> FailurePlan:
        """Decide (`plan_failure`) and log what a failure becomes."""
        plan = plan_failure(
            error,
            app="ASGI",
            headers_sent=self.headers_sent,
            complete=complete,
            raise_app_exceptions=self.opts.raise_app_exceptions,
        )
        _log.log(plan.level, "%s", plan.message, exc_info=error if plan.traceback else None)
        return plan

    def raise_late(self, error: Exception | None) -> None:
        """Raise to the WSGI server what the app raised after its complete response.

        Called from ``close()``: the server has sent the whole response by then (gunicorn
        writes the last chunk of a chunked body before it calls ``close()``), so the client
        has it all, and the server and the middleware around the adapter see the exception.
        """
        if error is not None:
            self._plan(error, complete=True)
            raise error

    def keep_late(self, exc: Exception) -> bool:
        """Keep an exception the app raised after its complete response for `raise_late`
        (`wsgi_raise_point`: from ``close()``, once the server sent the whole response, even
        when the app had ended before the server got anything); False when it is not to be
        raised (the option is off, or the client left) or the response was not complete."""
        point = wsgi_raise_point(headers_given=self.wsgi_started, complete=self.complete)
        # Once the WSGI server has closed the response, nothing can be raised to it any more.
        closed = self.input_closed or self.gone
        if point is RaisePoint.CLOSE and not closed and self.opts.raise_app_exceptions:
            self.late_error = exc
            return True
        return False

    # -- the app's task, on the event loop ----------------------------------------------------

    async def run(self, app: ASGIApp, scope: Message) -> None:
        """Run the app as this request's task; what it raises is kept for `fail` or logged."""
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except Exception as exc:
            if self.keep_late(exc):
                pass
            elif self.complete or self.gone:
                # Not kept: nothing depends on it any more, and its traceback would keep the
                # app's objects (an abandoned async generator awaiting its clean-up) alive.
                self.log_late(exc, complete=self.complete)
            else:
                self.error = exc
        finally:
            self.app_done = True
            self.emit(DONE, None)

    async def receive(self) -> Message:
        """The ASGI ``receive`` callable given to the app."""
        piece = await self.next_piece()
        if piece is not None:
            return {"type": "http.request", "body": piece[0], "more_body": piece[1]}
        if not (self.complete or self.gone):
            # ASGI HTTP spec ("Disconnect"): after the body, http.disconnect comes once the
            # response is sent or the client has left.
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                self.waiters.remove(waiter)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """The ASGI ``send`` callable given to the app."""
        if self.gone:
            raise client_gone()
        if self.violation is not None:
            raise AppProtocolError(f"the response already broke the protocol: {self.violation}")
        try:
            event = self.feed(message)
        except AppProtocolError as exc:
            self.violation = exc
            raise
        if type(event) is Body:
            data, more = event
            if data:
                self.sent += len(data)
                self.emit(BODY, data)
            if not more:
                self.complete = True
                self.emit(END, None)
                self.release()
                self.timebox(self.opts.background_timeout)
            elif self.sent - self.taken > self.opts.send_buffer:
                await self.drained()
        elif type(event) is Start:
            self.emit(START, event)
        elif type(event) is SendFile:
            self.complete = True
            self.emit(FILE, event.path)
            self.release()
            self.timebox(self.opts.background_timeout)

    async def drained(self) -> None:
        """Back-pressure: wait until the WSGI server has taken enough of the queued bytes."""
        self.drain_waiter = waiter = self.loop.create_future()
        # Checked again after publishing the waiter: in shared mode the WSGI thread may have
        # taken bytes in between, and it only wakes a waiter it can see.
        if self.sent - self.taken > self.opts.send_buffer and not self.gone:
            try:
                await waiter
            finally:
                self.drain_waiter = None
        else:  # pragma: no cover - the WSGI thread took the bytes in between: a race
            self.drain_waiter = None
        if self.gone:
            raise client_gone()

    def feed(self, message: Message) -> Start | Body | SendFile | None:
        """`ResponseCycle.feed`, logging the body bytes it drops past the app's Content-Length.

        Raises:
            AppProtocolError: see `ResponseCycle.feed`.
        """
        cycle = self.cycle
        dropped = cycle.dropped
        event = cycle.feed(message)
        if cycle.dropped != dropped:
            _log.warning(
                "the ASGI app sent %d bytes past its Content-Length of %s; dropped them",
                cycle.dropped - dropped,
                cycle.content_length,
            )
        return event

    def release(self) -> None:
        """Wake every wait of the app's: ``receive()`` for the disconnect or a body piece, and
        ``send()`` for back-pressure."""
        for waiter in self.waiters:
            resolve(waiter)
        resolve(self.piece_waiter)
        resolve(self.drain_waiter)

    def lose(self) -> None:
        """The client is gone: ``receive()`` answers ``http.disconnect``, ``send()`` raises."""
        self.gone = True
        self.release()
        self.timebox(self.opts.disconnect_grace)

    def server_closed(self) -> None:
        """The WSGI server called ``close()``: nobody reads the body or the response now."""
        self.input_closed = True
        late, self.late_error = self.late_error, None
        if late is not None:
            # The app raised after the WSGI side's close() looked (it had not ended then).
            self.log_late(late, complete=True)
        if self.complete:
            resolve(self.piece_waiter)
        else:
            self.lose()

    # -- what a mode says: how the loop side and the WSGI side meet ---------------------------

    @abstractmethod
    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        """Start the app's task (WSGI side); False when it cannot start (`fail` answers)."""

    @abstractmethod
    def emit(self, kind: int, value: Any) -> None:
        """Tell the WSGI side (`take`) what happened on the loop side."""

    @abstractmethod
    def wait(self) -> None:
        """Block the WSGI side until the loop side has emitted more."""

    @abstractmethod
    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        """Run ``callback`` on the loop side, from the WSGI side."""

    @abstractmethod
    def timebox(self, timeout: float) -> None:
        """The app has ``timeout`` s left to end (after its response, or once the client left)
        before it is cancelled."""

    @abstractmethod
    async def next_piece(self) -> tuple[bytes, bool] | None:
        """The next piece of the request body and whether more follows; ``None`` once the
        body is over or cannot be had."""

    @abstractmethod
    def finish(self) -> None:
        """The server is done with the response (WSGI side, from `close`)."""

    # -- the WSGI side --------------------------------------------------------------------------

    def begin(self, app: ASGIApp, scope: Message) -> Iterable[bytes]:
        """Start the app and wait until its response starts; return the WSGI iterable."""
        if not self.start_task(app, scope):
            return [self.fail()]
        while self.start is None and not self.done_seen:
            self.wait()
        start = self.start
        # A body that could not be read makes the answer a 413 / 400, unless the app already
        # completed its own response.
        if start is None or ((self.too_large or self.body_failed) and not self.ended):
            body = self.fail()
            self.ended = True
            if not self.done_seen:
                # The app started a response this request will not send: it is told the
                # client is gone and bounded like any app whose client left.
                self.close()
            return [body]
        self.start_response(start.status, start.headers)
        self.wsgi_started = True
        if self.file_path is not None:
            try:
                return self.send_file(wrap=True)
            except BaseException:
                # The app's error, raised to the server from the application call: no close()
                # will come, so it is called here.
                with contextlib.suppress(Exception):
                    self.close()
                raise
        if self.ended and self.late_error is None and (self.done_seen or self.bounds_itself):
            # The usual case: the app answered at once. A list lets the server skip close().
            # An app that answered in full and then raised (Starlette's ServerErrorMiddleware
            # and WSGIToASGI answer 500 and raise) gets the iterable: the server sends its
            # whole page, and close() raises (`wsgi_raise_point`).
            self.close()
            return self.out
        return self

    # Whether the loop bounds the app's work after its response by itself (shared mode), so
    # that the server need not call close() for it.
    bounds_itself = False

    def take(self, kind: int, value: Any) -> None:
        """Apply what the loop side emitted to the WSGI side's state."""
        if kind == BODY:
            self.out.append(value)
        elif kind == START:
            self.start = value
        elif kind == END:
            self.ended = True
        elif kind == FILE:
            self.file_path = value
            self.ended = True
        else:
            self.done_seen = True

    def __iter__(self) -> Call:
        return self

    def __next__(self) -> bytes:
        while True:
            out = self.out
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self.taken += len(data)
                waiter = self.drain_waiter
                if waiter is not None and self.sent - self.taken <= self.opts.send_buffer:
                    self.drain_waiter = None
                    self.call_on_loop(resolve, waiter)
                self.headers_sent = True
                return data
            file = self.file
            if file is not None:
                block = self.file_block(file)
                if block is None:
                    raise StopIteration
                return block
            if self.file_path is not None:
                # A pathsend that came after the iterable was handed over: read the file here.
                self.send_file(wrap=False)
                continue
            if self.ended:
                raise StopIteration
            if self.done_seen:
                self.ended = True
                return self.fail()
            self.wait()

    def close(self) -> None:
        """Called by the WSGI server when it is done with the response (PEP 3333).

        Raises:
            Exception: what the app raised after its complete response (`raise_late`).
        """
        if self.closed:
            return
        self.closed = True
        self.close_file()
        self.finish()
        late = None
        if self.app_done:
            # app_done is set after late_error: what late_error holds now is final. When the
            # app has not ended, server_closed logs what it may raise later.
            late, self.late_error = self.late_error, None
        if not self.done_seen:
            self.call_on_loop(self.server_closed)
        self.raise_late(late)

    # -- http.response.pathsend, on the WSGI thread ------------------------------------------

    def open_file(self, *, wrap: bool) -> Iterable[bytes] | None:
        """Open the file of an ``http.response.pathsend`` for the server to send.

        With ``wrap`` (the iterable is not handed to the server yet) the file goes through the
        server's ``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling",
        which gunicorn serves with ``sendfile()``) and that wrapper is returned. Otherwise, or
        when there is no usable wrapper, the file is kept for `file_block` and ``None`` is
        returned: the call itself is the iterable. A file that cannot be opened is the app's
        error; the iterable then yields the error page.
        """
        path = self.file_path
        if path is None:  # pragma: no cover - checked by the callers
            raise AppProtocolError("no file to send")
        self.file_path = None
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the wrapper, file_block or close()
        except OSError as exc:
            self.violation = AppProtocolError(f"http.response.pathsend cannot open {path!r}: {exc}")
            self.out = [self.fail()]
            return None
        if wrap and self.file_wrapper is not None:
            wrapped = wrap_file(self, file, self.file_wrapper)
            if wrapped is not None:
                return wrapped
        self.file = file
        return None

    def file_block(self, file: IO[bytes]) -> bytes | None:
        """The next block of the file being sent; ``None`` (and the file closed) at its end."""
        block = file.read(FILE_BLOCK_SIZE)
        if block:
            self.headers_sent = True
            return block
        file.close()
        self.file = None
        return None

    def send_file(self, *, wrap: bool) -> Iterable[bytes]:
        """The iterable for a pathsend (see `open_file`)."""
        wrapped = self.open_file(wrap=wrap)
        return self if wrapped is None else wrapped

    def close_file(self) -> None:
        """Close the file being sent, if any (the server closed the response early)."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def fail(self) -> bytes:
        """Answer for an app that ended without completing its response; return the body.

        `crossgate.sansio.failure.plan_failure` decides. With ``raise_app_exceptions`` (the
        default) the app's exception is raised to the WSGI server, which answers 500 itself
        while no body byte went out (gunicorn does, and logs it) and drops the connection
        after that. Otherwise, before any body byte went out, the answer becomes an error
        response: PEP 3333 ("Error Handling") lets ``start_response`` replace the headers,
        with ``exc_info``, until then. After that, the connection must be dropped so that the
        client cannot take a truncated body for a whole one. A request's own fault (a body
        over the limit, one that could not be read) always gets its 4xx.

        Raises:
            Exception: the app's exception, with ``raise_app_exceptions``.
            ResponseAborted: body bytes already went out (the cause is chained).
        """
        cause = self._cause()
        plan = self._plan(cause)
        if plan.propagate:
            raise cause
        if plan.outcome is Outcome.ABORT:
            raise ResponseAborted(
                "the ASGI app did not complete a response whose body had started"
            ) from cause
        line, headers, body = error_response(plan.status or 500, plan.detail)
        if self.wsgi_started:
            self.start_response(line, headers, _exc_info(cause))
        else:
            self.start_response(line, headers)
            self.wsgi_started = True
        return body
