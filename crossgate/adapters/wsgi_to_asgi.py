"""``WSGIToASGI``: serve a WSGI application from an ASGI server through a pool of threads."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import stat
import tempfile
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import IO, Any, Literal, TypeGuard

from crossgate._answer import refuse, respond
from crossgate._lifespan import Hook, answer_lifespan, run_hooks
from crossgate.adapters._exchange import Exchange, ReadAheadBudget, RequestBody
from crossgate.adapters._interface import check_app
from crossgate.adapters._memory import MemoryReleaser
from crossgate.adapters._streams import ErrorStream, FileWrapper
from crossgate.concurrency import set_server_loop
from crossgate.exceptions import (
    AppProtocolError,
    CrossgateError,
    PeerProtocolError,
    ProtocolError,
)
from crossgate.sansio.body_limit import BodyMeter, announces_body, declared_length
from crossgate.sansio.environ import EnvironOptions, build_environ
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.sansio.response import (
    OptExcInfo,
    ResponseState,
    body_chunk,
    error_events,
    file_send_event,
)
from crossgate.types import ASGIReceive, ASGISend, Message, WSGIApplication, as_message

__all__ = ["WSGIToASGI", "wsgi_to_asgi"]

_log = logging.getLogger("crossgate")

ASYNCIO_ONLY = (
    "crossgate's WSGIToASGI runs on asyncio only; serve it with an asyncio worker, "
    "e.g. hypercorn -k asyncio"
)


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` under another event loop (trio).

    The worker threads hand results back through the loop's ``call_soon_threadsafe`` and
    asyncio futures; trio has neither, and anyio is not a dependency crossgate may require.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WSGIToASGI:
    """Serve the WSGI application ``app`` as an ASGI application.

    Each request runs ``app`` in a worker thread from a bounded pool, with the request task's
    contextvars copied in. The request body streams into ``wsgi.input`` and the response
    streams back with back-pressure, in as few thread hand-offs as the traffic allows. The
    "WSGIToASGI" page of the documentation describes every behaviour and the spec choices
    behind it.

    Args:
        app: the WSGI application (PEP 3333).
        workers: size of the thread pool created for this adapter (ignored with ``executor``).
        executor: an executor to run requests on instead, possibly shared with other code.
        queue_timeout: seconds a request may wait for a free worker before a 503 with
            ``Retry-After``; ``None`` waits as long as it takes.
        request_body: ``"stream"`` feeds ``wsgi.input`` while the client sends; ``"spool"``
            reads the whole body first (memory up to ``spool_threshold``, then a temporary
            file), so a slow upload never holds a worker thread.
        spool_threshold: bytes kept in memory in spool mode.
        max_body_size: bodies larger than this get a 413; ``None`` for no limit.
        read_ahead: request bytes read ahead of the application, at most, per request.
        read_ahead_budget: request bytes read ahead of the applications, at most, across all
            requests on one event loop; past it, bodies are read at the applications' pace.
        release_memory: after a burst of request bodies, have the C allocator give the freed
            memory back to the operating system (glibc's ``malloc_trim``, on Linux only).
        send_buffer: response bytes the application may run ahead of the client, at most.
        max_headers: requests with more headers get a 431; ``None`` for no cap.
        keep_underscore_headers: keep request headers with ``_`` in their names.
        multiprocess: the value of ``wsgi.multiprocess`` (set it when the server runs workers).
        run_once: the value of ``wsgi.run_once``.
        on_startup: callables run at lifespan startup (may be ``async``).
        on_shutdown: callables run at lifespan shutdown (may be ``async``).
        retry_after: the ``Retry-After`` seconds sent with a queue-timeout 503.
        raise_app_exceptions: when the app raises (or breaks PEP 3333), answer 500 if no
            header went out yet (else abort the connection), then raise the app's exception
            to the server and to the middleware around the adapter (Sentry, Starlette's
            ``ServerErrorMiddleware``, test clients), as ASGI apps do. ``False`` keeps it
            here: the failure is logged at ERROR with its traceback and the request ends
            normally after its 500 (an abort raises `ResponseAborted`). The same name and
            meaning as on httpx's ``ASGITransport``.
        interface: ``"auto"`` refuses an ``app`` that `crossgate.routing.is_asgi` takes for
            ASGI; ``"wsgi"`` skips that check, for a WSGI app that fools it.

    It runs on asyncio only: under another event loop (trio, e.g. ``hypercorn -k trio``) it
    fails lifespan startup, and answers a request with a 500 and raises, with a message that
    says so.

    Raises:
        TypeError: ``app`` is not a WSGI application: not callable (``None``, a
            ``"module:app"`` string), or an ASGI application (the message names
            `crossgate.ASGIToWSGI`, the wrapper that serves ASGI apps from a WSGI server).
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
        # One budget per event loop: only its loop's thread changes it (see ReadAheadBudget).
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
        # Requests handed to the pool and not finished yet. Changed on the event loop only; an
        # adapter shared by several loops in threads may miscount, which only costs a hint.
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
        """The read-ahead budget of the requests on ``loop``."""
        budget = self._budgets.get(loop)
        if budget is None:
            budget = self._budgets[loop] = ReadAheadBudget(self.read_ahead_budget)
        return budget

    def _worker_free(self) -> bool:
        """True when a new request would start at once; always for a shared executor."""
        return self._shared_executor is not None or self._in_flight < self.workers

    def close(self, *, wait: bool = True) -> None:
        """Stop the adapter's own thread pool (a shared ``executor`` is left alone).

        Lifespan shutdown calls this; call it yourself when the server has no lifespan.
        Requests already queued still run to the end (dropping them would leave their
        clients waiting forever); a request arriving later starts a new pool.
        """
        pool, self._own_executor = self._own_executor, None
        if pool is not None:
            pool.shutdown(wait=wait)

    # -- ASGI entry point ---------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._refuse_websocket(scope, receive, send)
        else:
            # ASGI spec, "Applications": an application should raise for a scope type it does
            # not know, so the server can tell the protocol is unsupported.
            raise CrossgateError(f"WSGIToASGI cannot serve a {kind!r} scope")

    async def _http(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        try:
            environ = build_environ(scope, self._environ_options)
        except PeerProtocolError as exc:
            _log.info("rejected request: %s", exc)
            await _send_error(send, exc)
            return
        meter = None
        if self.max_body_size is not None:
            try:
                # Refuses a declared Content-Length over the limit before the app runs; a
                # streamed body is counted message by message as it arrives (`Exchange.feed`).
                meter = BodyMeter(
                    self.max_body_size, declared_length(environ.get("CONTENT_LENGTH"))
                )
            except PeerProtocolError as exc:
                await _send_error(send, exc)
                return
        loop = _asyncio_loop()
        if loop is None:
            # ASGI spec, "Applications": raise for what the application cannot serve, so the
            # server logs it; the client gets a plain 500 first instead of a reset.
            await _send_status(send, 500, "Internal Server Error")
            raise CrossgateError(ASYNCIO_ONLY)
        x = Exchange(
            loop,
            read_ahead=self.read_ahead,
            send_buffer=self.send_buffer,
            meter=meter,
            budget=self._budget(loop),
        )
        if self.request_body == "spool":
            spooled = await self._spool(receive, send, x)
            if spooled is None:
                return
            environ["wsgi.input"] = x.spooled = spooled
            # The whole body is here, so its size is known even for a chunked upload: PEP 3333
            # makes CONTENT_LENGTH optional, but Django reads exactly CONTENT_LENGTH bytes (and
            # nothing without it), ignoring wsgi.input_terminated.
            environ["CONTENT_LENGTH"] = str(x.received)
        elif self._worker_free() or not announces_body(
            environ.get("CONTENT_LENGTH"), environ.get("HTTP_TRANSFER_ENCODING")
        ):
            # The first body message is read here on the loop, before the worker starts: for
            # most requests it is the whole body, and the worker then never waits for input.
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect: the client left before we started
            x.feed(message)
            x.eager = True
            # This frame lives as long as the request: it must not keep the bytes the app reads.
            del message
            if x.body_error is not None:
                await _send_error(send, x.body_error)
                return
            environ["wsgi.input"] = RequestBody(x)
        else:
            # Every worker is busy, so the request waits in the queue. Reading its first
            # message now would hold it here, and let the server read the next one into its
            # own buffer, for as long as the request waits: hundreds of queued uploads (or
            # clients that announce a large body and leave) would hold hundreds of MiB. The
            # pump reads once a worker has picked the request up (`Exchange.begin`).
            environ["wsgi.input"] = RequestBody(x)
        environ["wsgi.errors"] = ErrorStream()
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["crossgate.disconnected"] = x.disconnected_event
        pump = loop.create_task(x.pump(receive))
        timer = None
        self._in_flight += 1
        try:
            executor = self._executor()
            try:
                executor.submit(contextvars.copy_context().run, self._run, x, environ, scope)
            except RuntimeError:  # the executor was shut down
                _log.warning("the worker pool is shut down; answering 503")
                await _send_status(send, 503, "the server is shutting down")
                return
            if self.queue_timeout is not None:
                start, body = error_events(
                    503,
                    "no worker was free in time",
                    extra_headers=((b"retry-after", str(self.retry_after).encode()),),
                )
                timer = loop.call_later(self.queue_timeout, x.expire, start, body["body"])
            await x.respond(
                send,
                raise_app_exceptions=self.raise_app_exceptions,
                http_version=scope.get("http_version", "1.1"),
            )
        finally:
            self._in_flight -= 1
            self._releaser.note(loop, x.received)
            pump.cancel()
            if timer is not None:
                timer.cancel()
            if x.abandon() and x.spooled is not None:
                x.spooled.close()
            x.settle()

    async def _spool(self, receive: ASGIReceive, send: ASGISend, x: Exchange) -> IO[bytes] | None:
        """Read the whole body before the app runs; ``None`` when there is nothing to run."""
        spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=self.spool_threshold)  # noqa: SIM115
        while True:
            message = await receive()
            if message["type"] != "http.request":
                spooled.close()
                _log.info("the client disconnected while sending the body; the app never ran")
                return None
            data: bytes = message.get("body", b"")
            x.received += len(data)
            if x.meter is not None:
                try:
                    x.meter.count(len(data))
                except PeerProtocolError as exc:
                    spooled.close()
                    await _send_error(send, exc)
                    return None
            spooled.write(data)
            if not message.get("more_body", False):
                break
        spooled.seek(0)
        with x.cond:
            x.body_complete = True
        return spooled

    # -- the worker thread --------------------------------------------------------------------

    def _run(self, x: Exchange, environ: dict[str, Any], scope: Mapping[str, Any]) -> None:
        """Run the app for one request, on a worker thread; report everything through ``x``."""
        if not x.begin():
            if x.spooled is not None:
                x.spooled.close()
            return
        try:
            self._run_app(x, environ, scope)
        except BaseException as exc:  # pragma: no cover - a crossgate bug must not hang
            _log.critical("crossgate failed while running a request", exc_info=exc)
            x.finish(exc)

    def _run_app(self, x: Exchange, environ: dict[str, Any], scope: Mapping[str, Any]) -> None:
        set_server_loop(x.loop)
        state = ResponseState()
        errors: ErrorStream = environ["wsgi.errors"]

        def write(data: bytes) -> None:
            # PEP 3333, "The write() Callable": kept for legacy apps; it blocks while the
            # client is too far behind, as the PEP allows.
            if type(data) is not bytes:
                data = body_chunk(data)
            if data:
                self._emit(x, state, data)
            else:
                x.check_connected()

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
            iterable = self.app(environ, start_response)
            if type(iterable) is list or type(iterable) is tuple:
                # The whole body is known: it goes out with the end of the response, in one
                # message and one wake-up of the loop.
                tail = self._clamp(state, _join(iterable))
            elif not self._try_file(x, state, iterable, scope):
                for chunk in iterable:
                    if type(chunk) is not bytes:
                        chunk = body_chunk(chunk)
                    if chunk:
                        if self._emit(x, state, chunk):
                            break
                    else:
                        # PEP 3333: an empty chunk must not send the headers. A long poll
                        # yields them while it waits: each is where it learns that the
                        # client left, so that it is closed as promptly as one that sends.
                        x.check_connected()
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
            if x.spooled is not None:
                # Our own reference: middleware (and wsgiref's validator) may have replaced
                # environ["wsgi.input"] with a wrapper.
                x.spooled.close()
        # A HEAD answer, a 204 and a 304 carry the Content-Length of a body they never send
        # (RFC 9110 sections 8.6, 9.3.2, 15.4.5).
        if (
            failure is None
            and state.shortfall()
            and environ["REQUEST_METHOD"] != "HEAD"
            and state.status not in (204, 304)
        ):
            failure = AppProtocolError(
                f"the app sent {state.shortfall()} bytes fewer than its Content-Length"
            )
        try:
            self._report(x, state, failure, tail, late)
        finally:
            # The exception's traceback holds this frame, which holds the exception: a cycle
            # that would keep the request (its read-ahead bytes, the environ) alive until the
            # cyclic garbage collector happens to run, long after a client left mid-upload.
            failure = late = None

    def _clamp(self, state: ResponseState, chunk: bytes) -> bytes:
        data, dropped, _ = state.clamp(chunk)
        if dropped:
            _log.warning(
                "the app sent %d bytes past its Content-Length of %d; dropped them",
                dropped,
                state.content_length,
            )
        return data

    def _emit(self, x: Exchange, state: ResponseState, chunk: bytes) -> bool:
        """Queue a body chunk; True once ``Content-Length`` bytes went out."""
        data = self._clamp(state, chunk)
        x.push(None if state.committed else state.commit(), data)
        return state.content_length is not None and state.sent >= state.content_length

    def _try_file(
        self,
        x: Exchange,
        state: ResponseState,
        iterable: Iterable[bytes],
        scope: Mapping[str, Any],
    ) -> bool:
        """Hand a ``wsgi.file_wrapper`` file to the server's pathsend / zerocopysend extension.

        The I/O half: find out whether the wrapped object is a regular file, where it stands
        and whether its name still points at it; `file_send_event` decides the rest. Returns
        False to fall back to iterating the wrapper.
        """
        extensions = scope.get("extensions") or {}
        if (
            not isinstance(iterable, FileWrapper)
            or scope.get("method") == "HEAD"
            or not extensions.keys() & {"http.response.pathsend", "http.response.zerocopysend"}
        ):
            return False
        file = iterable.filelike
        try:
            info = os.fstat(file.fileno())
            offset = file.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        path = _file_path(file, info)
        event = file_send_event(
            state, extensions, file=file, path=path, offset=offset, size=info.st_size
        )
        if event is None:
            return False
        x.push_file(state.commit(), as_message(event))
        return True

    def _report(
        self,
        x: Exchange,
        state: ResponseState,
        failure: BaseException | None,
        tail: bytes,
        late: Exception | None = None,
    ) -> None:
        """Hand the end of the response to the loop. A failure is decided and logged there
        (`Exchange.respond`), where it is known whether the headers reached the server.
        ``late`` is what ``close()`` raised after a complete body."""
        if failure is None:
            try:
                x.finish(start=None if state.committed else state.commit(), data=tail, late=late)
                return
            except AppProtocolError as exc:  # start_response() was never called
                failure = exc
        if late is not None:
            _log.error("the WSGI iterable's close() raised", exc_info=late)
        x.finish(failure)

    # -- lifespan and websocket ---------------------------------------------------------------

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        """Answer the lifespan protocol (ASGI lifespan spec), running the configured hooks:
        startup stops at the first failure, every shutdown hook runs (`run_hooks`)."""

        async def startup() -> str | None:
            if _asyncio_loop() is None:
                # Refuse to start rather than answer every request with a 500 later.
                _log.error("%s", ASYNCIO_ONLY)
                return ASYNCIO_ONLY
            return await run_hooks(self.on_startup, "on_startup")

        async def shutdown() -> str | None:
            error = await run_hooks(self.on_shutdown, "on_shutdown")
            self.close(wait=False)
            return error

        await answer_lifespan(receive, send, startup, shutdown)

    async def _refuse_websocket(
        self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        """Refuse a websocket: WSGI has no way to hold the connection open."""
        reason = "this path is served by a WSGI application, which cannot accept websockets"
        _log.info("refused a websocket to %s: %s", scope.get("path"), reason)
        await refuse(scope, receive, send, 403, reason)


def _join(chunks: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A list or tuple body in one piece; `AppProtocolError` names a chunk that is not bytes."""
    try:
        return b"".join(chunks)
    except TypeError:
        return b"".join([body_chunk(chunk) for chunk in chunks])


async def _send_error(send: ASGISend, error: ProtocolError) -> None:
    await respond(send, error.status_code, str(error))


_send_status = respond


def _file_path(file: Any, info: os.stat_result) -> str | None:
    """The absolute path of the open regular file ``file``, or None when none is known.

    Its ``name`` first. A wrapper such as Django's ``FieldFile`` names the file relative to its
    storage (``attachments/report.pdf``), not to the working directory; the file object it
    wraps (``.file``) knows the real path. On Linux, the kernel's own record of the open file
    (``/proc/self/fd/N``) serves when neither does. Every candidate must still name this very
    file (`_same_file`): pathsend sends a path, and a name that now points elsewhere would
    send another file.
    """
    inner = getattr(file, "file", None)
    candidates = [getattr(file, "name", None), getattr(inner, "name", None)]
    for name in candidates:
        if _same_file(name, info):
            return os.path.abspath(name)
    try:
        name = os.readlink(f"/proc/self/fd/{file.fileno()}")
    except OSError:  # pragma: no cover - no /proc/self/fd outside Linux
        return None
    return name if _same_file(name, info) else None


def _same_file(path: object, info: os.stat_result) -> TypeGuard[str]:
    """True when ``path`` still names the open file (it was not renamed or replaced)."""
    if not isinstance(path, str):
        return False
    try:
        current = os.stat(path)
    except OSError:
        return False
    return (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino)


def wsgi_to_asgi(app: WSGIApplication, **options: Any) -> WSGIToASGI:
    """Wrap ``app`` in `WSGIToASGI`; ``options`` are its keyword arguments."""
    return WSGIToASGI(app, **options)
