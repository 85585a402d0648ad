"""``ASGIToWSGI``: serve an ASGI app (FastAPI, Starlette, Django ASGI) from a WSGI server."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from queue import Empty, SimpleQueue
from typing import Any, Literal

from crossgate._lifespan import LifespanDriver
from crossgate.adapters._interface import check_app
from crossgate.adapters.asgi_to_wsgi._call import (
    BROKEN,
    CLOSE_WHEN_DONE,
    LOST,
    AppCall,
    Emitted,
    resolve,
)
from crossgate.concurrency._runtime import (
    LoopThread,
    after_fork_in_child,
    at_exit,
    cancel_tasks,
    finish_loop,
)
from crossgate.exceptions import CrossgateError, PeerProtocolError, RequestTooLarge
from crossgate.sansio.asgi_call_state import AppPhase, Event, InputPhase, next_phase
from crossgate.sansio.asgi_response import error_response
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.sansio.scope import build_scope, request_body_length
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["ASGIToWSGI", "asgi_to_wsgi"]

_log = logging.getLogger("crossgate")

Mode = Literal["auto", "inline", "shared"]
LifespanMode = Literal["auto", "on", "off"]

_ADAPTERS: weakref.WeakSet[ASGIToWSGI] = weakref.WeakSet()  # for the fork and exit hooks
_INHERITED: list[object] = []  # a fork's parent loops: never closed, so no "Task was destroyed"
_LIVENESS_POLL = 5.0  # how often a waiting WSGI thread checks that the loop thread is alive
READ_AHEAD = 512 * 1024  # each read for the loop costs a hand-off both ways (~100 us)


class SharedCall(AppCall):
    """One request in shared mode: its body is read as the app asks, `READ_AHEAD` bytes ahead."""

    bounds_itself = True
    reading = False
    timer: asyncio.TimerHandle | None = None

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        self.mailbox: SimpleQueue[Emitted] = SimpleQueue()
        # The first piece (most often the whole body) is read here: the app needs no hand-off.
        piece = self.read_piece()
        if piece is None:
            return False
        self.pieces = deque((piece,))
        self.loop_body_end = self.body is InputPhase.END
        try:
            context = contextvars.copy_context()
            self.loop.call_soon_threadsafe(self._create_task, app, scope, context=context)
        except RuntimeError:  # pragma: no cover - the adapter was shut down meanwhile
            self.error = CrossgateError("the shared event loop is closed")
            self.app = next_phase(self.app, Event.APP_RAISED)
            return False
        return True

    def _create_task(self, app: ASGIApp, scope: Message) -> None:  # in the request's context
        self.task = self.loop.create_task(self.run(app, scope))

    def emit(self, item: Emitted) -> None:
        if type(item) is AppPhase and self.timer is not None:
            self.timer.cancel()
        self.mailbox.put(item)

    async def next_piece(self) -> tuple[bytes, bool] | None:
        while self.pieces or not (self.loop_body_end or self.response in LOST):
            if self.pieces:
                data = self.pieces.popleft()
                if len(self.pieces) < 2:
                    self._want_more()  # read the next ones while the app uses these
                return data, not (self.loop_body_end and not self.pieces)
            self._want_more()
            self.piece_waiter = waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self.piece_waiter = None
        return None

    def _want_more(self) -> None:
        if not (self.reading or self.loop_body_end):
            self.reading = True
            self.mailbox.put(InputPhase.READING)

    def _deliver(self, pieces: list[bytes], body: InputPhase) -> None:
        self.reading = False
        self.pieces.extend(pieces)
        self.loop_body_end = body is InputPhase.END
        if body in BROKEN:
            self.advance(Event.CLIENT_GONE)
        resolve(self.piece_waiter)

    def timebox(self, timeout: float) -> None:
        if self.app is AppPhase.RUNNING and self.timer is None:
            assert self.task is not None  # this runs on the loop, after `_create_task`
            self.timer = self.loop.call_later(timeout, self.cancel, self.task, timeout)

    def call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the adapter shut down
            self.loop.call_soon_threadsafe(callback, *args)

    def wait(self) -> None:
        item: Emitted | None = None
        while item is None:
            with contextlib.suppress(Empty):
                item = self.mailbox.get(timeout=_LIVENESS_POLL)
            if item is None and not self.loop.is_running():  # pragma: no cover - it died
                self.error = CrossgateError("the shared event loop stopped")
                item = self.app = next_phase(self.app, Event.APP_RAISED)
        while item is not None:  # then every item queued, without waiting: coalesces small chunks
            if item is InputPhase.READING:  # read READ_AHEAD bytes (at least a piece) for the loop
                pieces: list[bytes] = []
                size = 0
                while size < READ_AHEAD and self.body is InputPhase.READING:
                    piece = self.read_piece()
                    if piece is None:
                        break
                    pieces.append(piece)
                    size += len(piece)
                self.call_on_loop(self._deliver, pieces, self.body)
            else:
                self.take(item)
            item = None if self.mailbox.empty() else self.mailbox.get_nowait()

    def finish(self) -> None:
        pass  # the loop bounds the app's work itself (`timebox`)


class _Process:
    """An adapter's lifespan and loops in one process: a loop thread, or one per WSGI thread."""

    def __init__(self, adapter: ASGIToWSGI, environ: WSGIEnvironment | None) -> None:
        self.pid = os.getpid()
        threaded = environ is not None and bool(environ.get("wsgi.multithread"))
        shared = adapter.mode == "shared" or (adapter.mode == "auto" and threaded)
        self.thread = LoopThread("crossgate-asgi-loop") if shared else None
        self.local = threading.local()
        self.lock = threading.Lock()
        self.loops: list[tuple[threading.Thread, asyncio.AbstractEventLoop]] = []
        if self.thread is not None:
            self.loops.append((self.thread.thread, self.thread.loop))
        # "auto" chose inline at startup(): warn once if threads come.
        self.check_threads = adapter.mode == "auto" and environ is None
        self.state: dict[str, Any] = {}
        self.failure: str | None = None
        self.lifespan: LifespanDriver | None = None
        if adapter.lifespan == "off":
            return
        self.lifespan = lifespan = LifespanDriver(adapter.app, required=adapter.lifespan == "on")
        try:  # on the loop requests will run on
            run = self.loop().run_until_complete if self.thread is None else self.thread.call
            run(lifespan.startup(adapter.lifespan_timeout))
        except BaseException:
            self.stop(1.0)
            raise
        self.failure = lifespan.failure
        if lifespan.supported and self.failure is None:
            self.state = lifespan.state

    def loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop | None = getattr(self.local, "loop", None)
        if loop is not None and not loop.is_closed():
            return loop
        with contextlib.suppress(RuntimeError):  # raised when no loop runs, as it must be
            asyncio.get_running_loop()
            raise CrossgateError(
                "ASGIToWSGI in inline mode was called from a thread that is running an event "
                "loop; it cannot run the app's loop there. Use mode='shared', or call the ASGI "
                "app directly from async code"
            )
        # The policy's loop: uvloop's, when the application chose it.
        self.local.loop = loop = asyncio.new_event_loop()
        with self.lock:
            dead = [old for thread, old in self.loops if not thread.is_alive()]
            self.loops = [entry for entry in self.loops if entry[0].is_alive()]
            self.loops.append((threading.current_thread(), loop))
        for old in dead:  # left behind by threads that ended
            finish_loop(old, 1.0)
        return loop

    def all(self) -> list[asyncio.AbstractEventLoop]:
        with self.lock:
            return [loop for _, loop in self.loops if not loop.is_closed()]

    def stop(self, timeout: float) -> None:
        # The requests' leftover tasks go first: lifespan shutdown closes what they use.
        lifespan = self.lifespan
        keep = () if lifespan is None or lifespan.task is None else (lifespan.task,)
        if self.thread is not None:
            self.thread.run(cancel_tasks(timeout, keep), 3 * timeout)
            if lifespan is not None:
                self.thread.run(lifespan.shutdown(timeout), 3 * timeout)
            self.thread.stop(timeout)
            return
        with self.lock:
            loops, self.loops = self.loops, []
        for _, loop in loops:
            if not (loop.is_running() or loop.is_closed()):  # a running one serves a request
                loop.run_until_complete(cancel_tasks(timeout, keep))
        if lifespan is not None and lifespan.task is not None:
            home = lifespan.task.get_loop()
            if not (home.is_closed() or home.is_running()):
                home.run_until_complete(lifespan.shutdown(timeout))
        for thread, loop in loops:
            if loop.is_running():
                _log.warning(
                    "the event loop of thread %s is serving a request: closing it when that "
                    "request ends",
                    thread.name,
                )
                CLOSE_WHEN_DONE.add(loop)
            else:
                finish_loop(loop, timeout)


class ASGIToWSGI:
    """Serve the ASGI application ``app`` as a WSGI application (PEP 3333).

    The app runs on the WSGI thread's own event loop (``mode="inline"``) or on one loop thread
    per process (``"shared"``). Every option is described in
    [ASGIToWSGI in detail](asgi-to-wsgi.md#options).

    Raises:
        TypeError: ``app`` is not callable, or is a WSGI application.
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: Mode = "auto",
        lifespan: LifespanMode = "auto",
        max_body_size: int | None = None,
        max_headers: int | None = DEFAULT_MAX_HEADERS,
        read_size: int = 64 * 1024,
        send_buffer: int = 256 * 1024,
        background_timeout: float = 5.0,
        disconnect_grace: float = 1.0,
        lifespan_timeout: float = 60.0,
        raise_app_exceptions: bool = True,
        interface: Literal["auto", "asgi"] = "auto",
    ) -> None:
        check_app(app, "asgi", interface)
        if mode not in ("auto", "inline", "shared"):
            raise ValueError("mode must be 'auto', 'inline' or 'shared'")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError("lifespan must be 'auto', 'on' or 'off'")
        for name, size in (("read_size", read_size), ("send_buffer", send_buffer)):
            if size < 1:
                raise ValueError(f"{name} must be at least 1 byte")
        for name, seconds in (
            ("max_body_size", max_body_size or 0),
            ("background_timeout", background_timeout),
            ("disconnect_grace", disconnect_grace),
            ("lifespan_timeout", lifespan_timeout),
        ):
            if seconds < 0:
                raise ValueError(f"{name} must not be negative")
        self.app = app
        self.mode: Mode = mode
        self.lifespan: LifespanMode = lifespan
        self.max_body_size = max_body_size
        self.max_headers = max_headers
        self.read_size = read_size
        self.send_buffer = send_buffer
        self.background_timeout = background_timeout
        self.disconnect_grace = disconnect_grace
        self.lifespan_timeout = lifespan_timeout
        self.raise_app_exceptions = raise_app_exceptions
        self._process: _Process | None = None
        self._lock = threading.Lock()
        _ADAPTERS.add(self)

    def _boot(self, environ: WSGIEnvironment | None) -> _Process:
        with self._lock:
            process = self._process
            if process is not None and process.pid == os.getpid():
                return process
            if process is not None:
                _INHERITED.append(process)
            self._process = process = _Process(self, environ)
            return process

    def startup(self) -> None:
        """Run lifespan startup now, not before the first request (gunicorn's ``post_fork``).

        Raises:
            CrossgateError: the app's startup failed (requests will answer 500 until
                `shutdown`), or startup was called on a thread running an event loop.
        """
        process = self._boot(None)
        if process.failure is not None:
            raise CrossgateError(process.failure)

    def shutdown(self) -> None:
        """Run lifespan shutdown and close this process's loops; a later request starts again.

        Raises:
            CrossgateError: called from the app itself, on a loop this would have to stop.
        """
        with self._lock:
            process = self._process
            if process is None or process.pid != os.getpid():
                return
            with contextlib.suppress(RuntimeError):  # raised when no loop runs here
                if asyncio.get_running_loop() in process.all():
                    raise CrossgateError(
                        "ASGIToWSGI.shutdown() was called from the app, on the adapter's own event "
                        "loop, which shutdown must stop; call it from another thread"
                    )
            self._process = None
        process.stop(min(self.lifespan_timeout, 10.0))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        process = self._process
        if process is None or process.pid != os.getpid():
            process = self._boot(environ)
        if process.failure is not None:
            _log.error("answering 500: lifespan startup failed: %s", process.failure)
            return _answer(start_response, 500)
        try:
            length = request_body_length(environ)
            scope = build_scope(environ, state=process.state, max_headers=self.max_headers)
            if self.max_body_size is not None and (length or 0) > self.max_body_size:
                raise RequestTooLarge.for_limit(self.max_body_size)
        except PeerProtocolError as exc:
            _log.info("answering %d: %s", exc.status_code, exc)
            return _answer(start_response, exc.status_code, str(exc))
        if process.thread is not None:
            call = SharedCall(self, process.thread.loop, environ, start_response, length)
            return call.begin(self.app, scope)
        if process.check_threads and environ.get("wsgi.multithread"):
            process.check_threads = False
            _log.warning(
                "ASGIToWSGI(mode='auto') is in inline mode (startup() ran before the first "
                "request) but the server is multithreaded: each thread runs its own loop. "
                "Pass mode='shared' if requests share loop-bound resources."
            )
        return AppCall(self, process.loop(), environ, start_response, length).begin(self.app, scope)


def _answer(start_response: StartResponse, status: int, message: str | None = None) -> list[bytes]:
    line, headers, body = error_response(status, message)
    start_response(line, headers)
    return [body]


@after_fork_in_child
def _after_fork_in_child() -> None:
    # A lock some thread of the parent held at fork() stays held for ever in the child.
    for adapter in list(_ADAPTERS):
        adapter._lock = threading.Lock()


@at_exit
def _shutdown_all() -> None:
    for adapter in list(_ADAPTERS):
        try:
            adapter.shutdown()
        except Exception:
            _log.exception("ASGIToWSGI shutdown at exit failed")


def asgi_to_wsgi(app: ASGIApp, **options: Any) -> ASGIToWSGI:
    """Wrap ``app`` in `ASGIToWSGI`; ``options`` are its keyword arguments."""
    return ASGIToWSGI(app, **options)
