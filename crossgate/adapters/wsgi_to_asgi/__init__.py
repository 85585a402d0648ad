"""``WSGIToASGI``: serve a WSGI application from an ASGI server through a pool of threads."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Literal

from crossgate._answer import refuse, respond
from crossgate._lifespan import Hook, answer_lifespan, run_hooks
from crossgate.adapters._interface import check_app
from crossgate.adapters._streams import ErrorStream, FileWrapper, RequestBody
from crossgate.adapters.wsgi_to_asgi._exchange import WorkerExchange
from crossgate.adapters.wsgi_to_asgi._incoming_body import ReadAheadBudget
from crossgate.adapters.wsgi_to_asgi._memory import MemoryReleaser
from crossgate.adapters.wsgi_to_asgi._worker import run_request
from crossgate.exceptions import CrossgateError, PeerProtocolError
from crossgate.sansio.body_limit import BodyMeter, announces_body, declared_length
from crossgate.sansio.environ import EnvironOptions, build_environ
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.types import ASGIReceive, ASGISend, Message, WSGIApplication

__all__ = ["WSGIToASGI", "wsgi_to_asgi"]

_log = logging.getLogger("crossgate")

ASYNCIO_ONLY = (
    "crossgate's WSGIToASGI runs on asyncio only; serve it with an asyncio worker, "
    "e.g. hypercorn -k asyncio"
)


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` under trio (the workers hand results back with
    ``call_soon_threadsafe`` and asyncio futures; anyio is not a dependency)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WSGIToASGI:
    """Serve the WSGI application ``app`` as an ASGI application.

    Each request runs ``app`` in a worker thread from a bounded pool, with the request task's
    contextvars copied in; the body streams into ``wsgi.input`` and the response streams back
    with back-pressure. The "WSGIToASGI" page of the documentation describes every behaviour.
    It runs on asyncio only: under trio it fails lifespan startup, and answers a request with a
    500 and raises.

    Args:
        app: the WSGI application (PEP 3333).
        workers: size of the adapter's own thread pool (ignored with ``executor``).
        executor: an executor to run requests on instead, possibly shared.
        queue_timeout: seconds a request may wait for a worker before a 503 with
            ``Retry-After`` (``retry_after`` seconds); ``None`` waits as long as it takes.
        request_body: ``"stream"`` feeds ``wsgi.input`` while the client sends; ``"spool"``
            reads the whole body first (in memory up to ``spool_threshold`` bytes, then in a
            temporary file), so a slow upload never holds a worker.
        max_body_size: bodies larger than this get a 413; ``None`` for no limit.
        read_ahead: request bytes read ahead of the application, at most, per request...
        read_ahead_budget: ...and across all requests on one event loop.
        release_memory: after a burst of request bodies, give the freed memory back to the
            operating system (glibc's ``malloc_trim``, on Linux only).
        send_buffer: response bytes the application may run ahead of the client, at most.
        max_headers: requests with more headers get a 431; ``None`` for no cap.
        keep_underscore_headers: keep request headers with ``_`` in their names.
        multiprocess: the value of ``wsgi.multiprocess``; run_once: of ``wsgi.run_once``.
        on_startup: callables (may be ``async``) run at lifespan startup; on_shutdown: at
            shutdown.
        raise_app_exceptions: when the app raises (or breaks PEP 3333), answer 500 if no
            header went out (else abort), then raise the exception to the server and the
            middleware around the adapter, as ASGI apps do (httpx's ``ASGITransport`` has the
            same option). ``False`` logs it at ERROR instead; an abort raises `ResponseAborted`.
        interface: ``"auto"`` refuses an ``app`` that `crossgate.routing.is_asgi` takes for
            ASGI; ``"wsgi"`` skips that check.

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
        # Here, not at the first request, which would fail with a bare TypeError.
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
        # One budget per event loop: only its loop's thread changes it.
        self._budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReadAheadBudget] = (
            weakref.WeakKeyDictionary()
        )
        self._releaser = MemoryReleaser() if release_memory else MemoryReleaser(None)
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
        self._own_executor: ThreadPoolExecutor | None = None
        self._own_executor_pid = 0
        # Requests in the pool; a hint only (several loops sharing the adapter may miscount).
        self._in_flight = 0

    # -- the thread pool ----------------------------------------------------------------------

    def _executor(self) -> Executor:
        if self._shared_executor is not None:
            return self._shared_executor
        pool = self._own_executor
        # Threads do not survive fork(): a pool made before the server forked its workers
        # (gunicorn --preload) would be a pool of ghosts in the child. Check the PID.
        if pool is None or self._own_executor_pid != os.getpid():
            pool = self._own_executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="crossgate-wsgi"
            )
            self._own_executor_pid = os.getpid()
        return pool

    def _budget(self, loop: asyncio.AbstractEventLoop) -> ReadAheadBudget:
        budget = self._budgets.get(loop)
        if budget is None:
            budget = self._budgets[loop] = ReadAheadBudget(self.read_ahead_budget)
        return budget

    def close(self, *, wait: bool = True) -> None:
        """Stop the adapter's own thread pool (not a shared ``executor``); lifespan shutdown
        calls it. Queued requests still run; a later request starts a new pool."""
        pool, self._own_executor = self._own_executor, None
        if pool is not None:
            pool.shutdown(wait=wait)

    # -- ASGI entry point ---------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await answer_lifespan(receive, send, self._startup, self._shutdown)
        elif kind == "websocket":
            reason = "this path is served by a WSGI application, which cannot accept websockets"
            _log.info("refused a websocket to %s: %s", scope.get("path"), reason)
            await refuse(scope, receive, send, 403, reason)
        else:
            # ASGI spec, "Applications": raise for a scope type the app does not know.
            raise CrossgateError(f"WSGIToASGI cannot serve a {kind!r} scope")

    async def _http(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        loop = _asyncio_loop()
        if loop is None:
            # ASGI spec, "Applications": raise for what the app cannot serve; a 500 goes first.
            await respond(send, 500, "Internal Server Error")
            raise CrossgateError(ASYNCIO_ONLY)
        try:
            environ = build_environ(scope, self._environ_options)
            # A declared Content-Length over max_body_size is refused here, before the app runs.
            length = environ.get("CONTENT_LENGTH")
            meter = None
            if self.max_body_size is not None:
                meter = BodyMeter(self.max_body_size, declared_length(length))
            # The first body message (often the whole body) is read here if a worker is free:
            # a queued request reads none, or hundreds of queued uploads would hold 100s of MiB.
            eager = self.request_body == "stream" and (
                self._shared_executor is not None  # no count of a shared executor's workers
                or self._in_flight < self.workers
                or not announces_body(length, environ.get("HTTP_TRANSFER_ENCODING"))
            )
            exchange = WorkerExchange(
                loop,
                read_ahead=self.read_ahead,
                send_buffer=self.send_buffer,
                meter=meter,
                budget=self._budget(loop),
                eager=eager,
            )
            if self.request_body == "spool":
                environ["wsgi.input"] = await exchange.spool(receive, self.spool_threshold)
                if environ["wsgi.input"] is None:
                    return
                # Known even for a chunked upload: Django reads exactly CONTENT_LENGTH bytes.
                environ["CONTENT_LENGTH"] = str(exchange.received)
            else:
                if eager:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # http.disconnect: the client left before we started
                    exchange.feed(message)
                    del message  # this frame lives as long as the request: not its bytes
                environ["wsgi.input"] = RequestBody(exchange)
        except PeerProtocolError as exc:
            _log.info("rejected request: %s", exc)
            await respond(send, exc.status_code, str(exc))
            return
        environ["wsgi.errors"] = ErrorStream()
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["crossgate.disconnected"] = exchange.disconnected_event
        pump = loop.create_task(exchange.pump(receive))
        timer = None
        self._in_flight += 1
        try:
            executor = self._executor()
            try:
                extensions = scope.get("extensions") or {}
                context = contextvars.copy_context()
                executor.submit(context.run, run_request, self.app, exchange, environ, extensions)
            except RuntimeError:  # the executor was shut down
                _log.warning("the worker pool is shut down; answering 503")
                await respond(send, 503, "the server is shutting down")
                return
            if self.queue_timeout is not None:
                timer = loop.call_later(self.queue_timeout, exchange.expire, self.retry_after)
            await exchange.respond(
                send,
                raise_app_exceptions=self.raise_app_exceptions,
                http_version=scope.get("http_version", "1.1"),
            )
        finally:
            self._in_flight -= 1
            self._releaser.note(loop, exchange.received)
            pump.cancel()
            if timer is not None:
                timer.cancel()
            exchange.end()

    # -- lifespan (answer_lifespan: startup stops at the first failure, shutdown runs all) ----

    async def _startup(self) -> str | None:
        if _asyncio_loop() is None:
            # Refuse to start rather than answer every request with a 500 later.
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
