"""``WSGIToASGI``: serve a WSGI application from an ASGI server through a pool of threads."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Literal

from crossgate._answer import refuse, respond
from crossgate._lifespan import Hook, answer_lifespan, run_hooks
from crossgate.adapters._interface import check_app
from crossgate.adapters._streams import ErrorStream, FileWrapper
from crossgate.adapters.wsgi_to_asgi._exchange import WorkerExchange
from crossgate.adapters.wsgi_to_asgi._incoming_body import (
    Disconnection,
    ReadAheadBudget,
    RequestBody,
    Watchman,
)
from crossgate.concurrency._pool import Pool, submit_to
from crossgate.exceptions import CrossgateError, PeerProtocolError
from crossgate.sansio.body_limit import BodyMeter, announces_body, declared_length, has_no_body
from crossgate.sansio.environ import EnvironOptions, build_environ
from crossgate.sansio.exchange import BodyPhase
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.types import ASGIReceive, ASGISend, Message, WSGIApplication

__all__ = ["WSGIToASGI", "wsgi_to_asgi"]

_log = logging.getLogger("crossgate")

ASYNCIO_ONLY = (
    "crossgate's WSGIToASGI runs on asyncio only; serve it with an asyncio worker, "
    "e.g. hypercorn -k asyncio"
)


# A trim of the heap falls due after this many body bytes, then waits for TRIM_DELAY quiet
# seconds (one trim per burst), or TRIM_MAX_WAIT under traffic that never pauses.
TRIM_AFTER_BYTES = 16 * 1024 * 1024
TRIM_DELAY = 0.5
TRIM_MAX_WAIT = 10.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (malloc_trim(3)); None elsewhere, and with musl (Alpine)."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - tested on Linux
        return None
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
    found: Callable[[int], int] | None = trim
    return found


_MALLOC_TRIM = _find_malloc_trim()


class MemoryReleaser:
    """Calls ``trim`` (None: never) after each burst of body bytes on one event loop."""

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self._trim = trim
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the pending trim fell due (loop time)
        self._last = 0.0  # when body bytes last went through (loop time)
        self.pending = 0

    def note(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        trim = self._trim
        if trim is None or not size:  # a request without body bytes is not part of a burst
            return
        self.pending += size
        self._last = loop.time()
        if self.pending >= TRIM_AFTER_BYTES and self._handle is None:
            self._due = self._last
            self._handle = loop.call_later(TRIM_DELAY, self._check, loop, trim)

    def _check(self, loop: asyncio.AbstractEventLoop, trim: Callable[[int], int]) -> None:
        now = loop.time()
        quiet_at = self._last + TRIM_DELAY
        if now < quiet_at and now - self._due < TRIM_MAX_WAIT:
            self._handle = loop.call_later(quiet_at - now, self._check, loop, trim)
            return
        self._handle = None
        self.pending = 0
        # A trim walks the whole heap (~10 ms for a few hundred MiB): not on the loop.
        with contextlib.suppress(RuntimeError):  # the interpreter is exiting
            threading.Thread(target=_trim_now, args=(trim,), name="crossgate-trim").start()


def _trim_now(trim: Callable[[int], int]) -> None:
    _log.debug("malloc_trim(0) after a burst of request bodies returned %d", trim(0))


class WSGIToASGI:
    """Serve the WSGI application ``app`` as an ASGI application.

    Each request runs ``app`` in a worker thread from a bounded pool, with the request task's
    contextvars copied in; the body streams into ``wsgi.input`` and the response streams back
    with back-pressure. It runs on asyncio only. Every option is described in
    [WSGIToASGI in detail](wsgi-to-asgi.md#options).

    Raises:
        TypeError: ``app`` is not callable (``None``, a ``"module:app"`` string), or is an
            ASGI application (the message names `crossgate.ASGIToWSGI`).
        ValueError: an option is out of range.
        CrossgateError: (from a call) the server runs it on an event loop other than asyncio.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        workers: int = 32,
        executor: Executor | None = None,
        queue_timeout: float | None = None,
        request_body: Literal["stream", "spool"] = "stream",
        spool_threshold: int = 1024 * 1024,
        max_body_size: int | None = None,
        read_ahead: int = 1024 * 1024,
        read_ahead_budget: int = 4 * 1024 * 1024,
        release_memory: bool = True,
        send_buffer: int = 256 * 1024,
        max_headers: int | None = DEFAULT_MAX_HEADERS,
        keep_underscore_headers: bool = False,
        multiprocess: bool = False,
        run_once: bool = False,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        retry_after: int = 1,
        raise_app_exceptions: bool = True,
        interface: Literal["auto", "wsgi"] = "auto",
    ) -> None:
        check_app(app, "wsgi", interface)
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if request_body not in ("stream", "spool"):
            raise ValueError("request_body must be 'stream' or 'spool'")
        for name, value in (
            ("read_ahead", read_ahead),
            ("read_ahead_budget", read_ahead_budget),
            ("send_buffer", send_buffer),
            ("spool_threshold", spool_threshold),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1 byte")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        if queue_timeout is not None and queue_timeout <= 0:
            raise ValueError("queue_timeout must be positive")
        self.app = app
        self.workers = workers
        self.queue_timeout = queue_timeout
        self.request_body = request_body
        self.spool_threshold = spool_threshold
        self.max_body_size = max_body_size
        self.read_ahead = read_ahead
        self.read_ahead_budget = read_ahead_budget
        self.release_memory = release_memory
        # What the requests of one event loop share: the read-ahead budget, the watch timer.
        self._per_loop = weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[ReadAheadBudget, Watchman]
        ]()
        # The last loop's entry, checked first: a WeakKeyDictionary lookup costs a new weakref.
        self._last: tuple[
            Callable[[], asyncio.AbstractEventLoop | None], tuple[ReadAheadBudget, Watchman]
        ] = (lambda: None, (ReadAheadBudget(read_ahead_budget), Watchman()))
        self._releaser = MemoryReleaser(_MALLOC_TRIM if release_memory else None)
        self.send_buffer = send_buffer
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.retry_after = retry_after
        self.raise_app_exceptions = raise_app_exceptions
        self._environ_options = EnvironOptions(
            keep_underscore_headers=keep_underscore_headers,
            max_headers=max_headers,
            multiprocess=multiprocess,
            run_once=run_once,
        )
        self._shared_executor = executor
        self._own_executor: Pool | None = None
        self._in_flight = 0  # a hint only: several loops sharing the adapter may miscount

    def _shared_for(self, loop: asyncio.AbstractEventLoop) -> tuple[ReadAheadBudget, Watchman]:
        shared = self._per_loop.get(loop)
        if shared is None:
            shared = self._per_loop[loop] = ReadAheadBudget(self.read_ahead_budget), Watchman()
        self._last = weakref.ref(loop), shared
        return shared

    def _pool(self) -> Pool:
        # A Pool starts afresh in a forked child (gunicorn --preload): no PID check needed.
        pool = self._own_executor
        if pool is None:
            pool = self._own_executor = Pool("crossgate-wsgi_", self.workers)
        return pool

    def close(self, *, wait: bool = True) -> None:
        """Stop the adapter's own thread pool (not a shared ``executor``); lifespan shutdown
        calls it. Queued requests still run; a later request starts a new pool."""
        pool, self._own_executor = self._own_executor, None
        if pool is not None:
            pool.shutdown(wait=wait)

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await answer_lifespan(receive, send, self._startup, self._shutdown)
            return
        if kind == "websocket":
            reason = "this path is served by a WSGI application, which cannot accept websockets"
            _log.info("refused a websocket to %s: %s", scope.get("path"), reason)
            await refuse(scope, receive, send, 403, reason)
            return
        if kind != "http":  # ASGI spec, "Applications": raise for a scope type it does not know
            raise CrossgateError(f"WSGIToASGI cannot serve a {kind!r} scope")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio: raise for what the app cannot serve (ASGI spec), after a 500
            await respond(send, 500, "Internal Server Error")
            raise CrossgateError(ASYNCIO_ONLY) from None
        try:
            environ = build_environ(scope, self._environ_options)
            length = environ.get("CONTENT_LENGTH")
            meter = None
            if self.max_body_size is not None:
                meter = BodyMeter(self.max_body_size, declared_length(length))
            encoding = environ.get("HTTP_TRANSFER_ENCODING")
            has_body = announces_body(length, encoding)
            # Read the first body message now only if a worker is free: queued uploads wait.
            eager = self.request_body == "stream" and (
                self._shared_executor is not None  # no count of a shared executor's workers
                or self._in_flight < self.workers
                or not has_body
            )
            last = self._last  # one read: another thread's loop may replace it meanwhile
            if last[0]() is loop:  # a server runs one loop per process (or per thread)
                budget, watchman = last[1]
            else:
                budget, watchman = self._shared_for(loop)
            exchange = WorkerExchange(loop, self.read_ahead, self.send_buffer, meter, budget, eager)
            environ["wsgi.input"] = RequestBody(exchange)
            if self.request_body == "spool":
                environ["wsgi.input"] = await exchange.spool(receive, self.spool_threshold)
                if environ["wsgi.input"] is None:
                    return
                # Known even for a chunked upload: Django reads exactly CONTENT_LENGTH bytes.
                environ["CONTENT_LENGTH"] = str(exchange.received)
            elif eager and has_no_body(length, encoding, scope.get("http_version", "1.1")):
                exchange.body_phase = BodyPhase.COMPLETE  # no http.request message to wait for
            elif eager:
                message = await receive()
                if message["type"] != "http.request":
                    return  # http.disconnect: the client left before we started
                exchange.feed(message)
                del message  # this frame lives as long as the request: not its bytes
        except PeerProtocolError as exc:
            _log.info("rejected request: %s", exc)
            await respond(send, exc.status_code, str(exc))
            return
        environ["wsgi.errors"] = ErrorStream()
        environ["wsgi.file_wrapper"] = FileWrapper
        # Not kept by the exchange: the two would make a cycle only the cyclic GC frees.
        environ["crossgate.disconnected"] = Disconnection(exchange)
        exchange.watch(receive, watchman)
        timer = None
        self._in_flight += 1
        try:
            exchange.prepare(self.app, environ, scope.get("extensions") or {}, self.retry_after)
            try:
                if self._shared_executor is None:
                    # One queue put per request: no Future, no executor bookkeeping.
                    self._pool().put(exchange)
                else:
                    submit_to(self._shared_executor, exchange)
            except RuntimeError:  # the executor was shut down
                _log.warning("the worker pool is shut down; answering 503")
                await respond(send, 503, "the server is shutting down")
                return
            if self.queue_timeout is not None:
                timer = loop.call_later(self.queue_timeout, exchange.expire, self.retry_after)
            version = scope.get("http_version", "1.1")
            await exchange.respond(send, self.raise_app_exceptions, version)
        finally:
            self._in_flight -= 1
            self._releaser.note(loop, exchange.received)
            exchange.stop_watching()
            if timer is not None:
                timer.cancel()
            exchange.end()

    async def _startup(self) -> str | None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio
            _log.error("%s", ASYNCIO_ONLY)
            return ASYNCIO_ONLY
        return await run_hooks(self.on_startup, "on_startup")

    async def _shutdown(self) -> str | None:
        error = await run_hooks(self.on_shutdown, "on_shutdown")
        self.close(wait=False)
        return error


def wsgi_to_asgi(app: WSGIApplication, **options: Any) -> WSGIToASGI:
    """Wrap ``app`` in `WSGIToASGI`; ``options`` are its keyword arguments."""
    return WSGIToASGI(app, **options)
