"""``ASGIToWSGI``: serve an ASGI app (FastAPI, Starlette, Django ASGI) from a WSGI server."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Literal

from crossgate._lifespan import LifespanDriver
from crossgate.adapters._interface import check_app
from crossgate.adapters.asgi_to_wsgi._call import AppCall
from crossgate.adapters.asgi_to_wsgi._inline import InlineCall
from crossgate.adapters.asgi_to_wsgi._loops import LoopThread, ThreadLoops, cancel_tasks
from crossgate.adapters.asgi_to_wsgi._shared import SharedCall
from crossgate.concurrency._runtime import after_fork_in_child, at_exit
from crossgate.exceptions import CrossgateError, PeerProtocolError, RequestTooLarge
from crossgate.sansio.asgi_response import error_response
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.sansio.scope import build_scope, request_body_length
from crossgate.types import ASGIApp, StartResponse, WSGIEnvironment

__all__ = ["ASGIToWSGI", "asgi_to_wsgi"]

_log = logging.getLogger("crossgate")

Mode = Literal["auto", "inline", "shared"]
LifespanMode = Literal["auto", "on", "off"]

# Every adapter, for the at-fork and at-exit hooks below.
_ADAPTERS: weakref.WeakSet[ASGIToWSGI] = weakref.WeakSet()
# What a forked child inherited: loops whose threads do not exist here. Kept referenced, never
# closed, so that their pending tasks never log "Task was destroyed but it is pending".
_INHERITED: list[object] = []


class _Process:
    """What an adapter holds for one process: its loops and its lifespan."""

    def __init__(self, mode: Literal["inline", "shared"], lifespan: LifespanDriver | None) -> None:
        self.pid = os.getpid()
        self.lifespan = lifespan
        self.state: dict[str, Any] = {}
        self.failure: str | None = None
        self.loops: ThreadLoops | LoopThread = (
            ThreadLoops() if mode == "inline" else LoopThread("crossgate-asgi-loop")
        )
        self.lifespan_loop: asyncio.AbstractEventLoop | None = None
        # "auto" chose inline before any request (startup()): warn once if threads come.
        self.check_threads = False

    def start(self, timeout: float) -> None:
        """Run lifespan startup on the loop requests will run on."""
        lifespan = self.lifespan
        if lifespan is None:
            return
        loops = self.loops
        if isinstance(loops, LoopThread):
            loops.call(lifespan.startup(timeout))
            self.lifespan_loop = loops.loop
        else:
            self.lifespan_loop = loop = loops.get()
            loop.run_until_complete(lifespan.startup(timeout))
        self.failure = lifespan.failure
        if lifespan.supported and self.failure is None:
            self.state = lifespan.state

    def on_own_loop(self) -> bool:
        """Whether the caller runs on one of this process's loops (the app)."""
        loops = self.loops
        if isinstance(loops, LoopThread):
            return threading.current_thread() is loops.thread
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return running in loops.all()

    def stop(self, timeout: float) -> None:
        """Cancel the requests' leftover tasks first (lifespan shutdown closes what they use),
        then shut the lifespan down and close the loops."""
        lifespan = self.lifespan
        keep = (lifespan.task,) if lifespan is not None and lifespan.task is not None else ()
        loops = self.loops
        if isinstance(loops, LoopThread):
            loops.run(cancel_tasks(timeout, keep), 3 * timeout)
            if lifespan is not None:
                loops.run(lifespan.shutdown(timeout), 3 * timeout)
            loops.stop(timeout)
            return
        for loop in loops.all():
            # A running loop belongs to a thread serving a request: left alone.
            if not loop.is_running():
                loop.run_until_complete(cancel_tasks(timeout, keep))
        home = self.lifespan_loop
        if (
            lifespan is not None
            and home is not None
            and not (home.is_closed() or home.is_running())
        ):
            home.run_until_complete(lifespan.shutdown(timeout))
        loops.close(timeout)


class ASGIToWSGI:
    """Serve the ASGI application ``app`` as a WSGI application (PEP 3333).

    Both bodies stream; the "ASGIToWSGI" documentation page describes every behaviour.

    Args:
        app: the ASGI application (ASGI 3).
        mode: ``"inline"`` runs the app on the WSGI thread's own event loop, with no hand-off
            (gunicorn sync); ``"shared"`` on one loop thread per process (threaded servers whose
            app shares loop-bound resources, such as a database pool); ``"auto"`` picks
            ``"shared"`` when the first request's ``wsgi.multithread`` is true.
        lifespan: ``"auto"`` runs the ASGI lifespan protocol if the app supports it; ``"on"``
            requires it; ``"off"`` never runs it. It starts once per process before its first
            request (or at `startup`); a failed startup makes every request answer 500.
        max_body_size: request bodies larger than this get a 413; ``None`` for no limit.
        max_headers: requests with more headers get a 431; ``None`` for no cap.
        read_size: the largest piece of request body read at a time (``http.request``).
        send_buffer: response bytes the app may send ahead of the server before ``send()``
            waits (back-pressure).
        background_timeout: seconds the app may run after its complete response (Starlette
            ``BackgroundTasks``) before it is cancelled.
        disconnect_grace: the same, once the client is gone.
        lifespan_timeout: seconds lifespan startup and shutdown may take each.
        raise_app_exceptions: raise the app's exceptions (and `AppProtocolError`) to the WSGI
            server and its middleware (`crossgate.sansio.failure.wsgi_raise_point` says where);
            ``False`` logs them and answers 500 (or `ResponseAborted` after body bytes).
        interface: ``"auto"`` refuses an ``app`` that `crossgate.routing.is_asgi` takes for
            WSGI; ``"asgi"`` skips that check.

    Raises:
        TypeError: ``app`` is not callable, or is a WSGI application (the message names
            `crossgate.WSGIToASGI`).
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
        """This process's state, made (and its lifespan started) on its first call."""
        with self._lock:
            process = self._process
            if process is not None and process.pid == os.getpid():
                return process
            if process is not None:
                _INHERITED.append(process)
            mode = self.mode
            if mode == "auto":
                threaded = environ is not None and bool(environ.get("wsgi.multithread"))
                mode = "shared" if threaded else "inline"
            lifespan = (
                None
                if self.lifespan == "off"
                else LifespanDriver(self.app, required=self.lifespan == "on")
            )
            process = _Process(mode, lifespan)
            process.check_threads = self.mode == "auto" and environ is None
            try:
                process.start(self.lifespan_timeout)
            except BaseException:
                process.stop(1.0)
                raise
            self._process = process
            return process

    def startup(self) -> None:
        """Run lifespan startup now, in this process, instead of before its first request
        (after a fork, e.g. from gunicorn's ``post_fork``). Does nothing when it already ran.
        With ``mode="auto"`` it chooses inline mode: pass ``mode="shared"`` for threads.

        Raises:
            CrossgateError: the app's startup failed (requests will answer 500 until
                `shutdown`), or startup was called on a thread running an event loop.
        """
        process = self._boot(None)
        if process.failure is not None:
            raise CrossgateError(process.failure)

    def shutdown(self) -> None:
        """Cancel leftover work, run lifespan shutdown and close this process's loops. Runs by
        itself at exit; a request after it starts everything again.

        Raises:
            CrossgateError: called from the app itself, on a loop this would have to stop.
        """
        with self._lock:
            process = self._process
            if process is None or process.pid != os.getpid():
                return
            if process.on_own_loop():
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
            limit = self.max_body_size
            if limit is not None and length is not None and length > limit:
                raise RequestTooLarge.for_limit(limit)
        except PeerProtocolError as exc:
            _log.info("answering %d: %s", exc.status_code, exc)
            return _answer(start_response, exc.status_code, str(exc))
        loops = process.loops
        call: AppCall
        if isinstance(loops, LoopThread):
            call = SharedCall(self, loops.loop, environ, start_response, length)
        else:
            if process.check_threads and environ.get("wsgi.multithread"):
                process.check_threads = False
                _log.warning(
                    "ASGIToWSGI(mode='auto') is in inline mode (startup() ran before the first "
                    "request) but the server is multithreaded: each thread runs its own loop. "
                    "Pass mode='shared' if requests share loop-bound resources."
                )
            call = InlineCall(self, loops.get(), environ, start_response, length)
        return call.begin(self.app, scope)


def _answer(start_response: StartResponse, status: int, message: str | None = None) -> list[bytes]:
    line, headers, body = error_response(status, message)
    start_response(line, headers)
    return [body]


def _after_fork_in_child() -> None:
    # A lock some thread of the parent held at fork() stays held for ever in the child.
    for adapter in list(_ADAPTERS):
        adapter._lock = threading.Lock()


def _shutdown_all() -> None:
    for adapter in list(_ADAPTERS):
        try:
            adapter.shutdown()
        except Exception:
            _log.exception("ASGIToWSGI shutdown at exit failed")


after_fork_in_child(_after_fork_in_child)
at_exit(_shutdown_all)


def asgi_to_wsgi(app: ASGIApp, **options: Any) -> ASGIToWSGI:
    """Wrap ``app`` in `ASGIToWSGI`; ``options`` are its keyword arguments."""
    return ASGIToWSGI(app, **options)
