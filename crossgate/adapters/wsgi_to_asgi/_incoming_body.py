"""The request body on its way from the event loop to the worker thread running the app."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections import deque
from typing import IO

from crossgate.adapters._streams import LineReader
from crossgate.exceptions import ClientDisconnected, CrossgateError, PeerProtocolError
from crossgate.sansio.body_limit import BodyMeter
from crossgate.sansio.exchange import KEEPS_BODY, READS_AHEAD, BodyPhase, WorkerPhase
from crossgate.types import ASGIReceive, HTTPResponseStartEvent, Message

__all__ = ["GONE", "Disconnection", "IncomingBody", "ReadAheadBudget", "RequestBody", "Watchman"]

_log = logging.getLogger("crossgate")

GONE = "the client disconnected"
# A response still running after one to two of these gets a task watching for http.disconnect
# (one that reads the body ahead starts at once); most finish sooner, and a task per request
# costs.
WATCH_DELAY = 0.05
_ALL = 1 << 62  # a read of "everything"


def wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ReadAheadBudget:
    """Request bytes read ahead across one event loop's requests; changed on that loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class Watchman:
    """One event loop's timer for the requests it serves: each `WATCH_DELAY` tick starts the
    ``http.disconnect`` watch of those that were already running at the tick before.

    One timer per loop, not one per request: a timer made and cancelled per request costs as
    much as the task it saves. Used on its loop only.
    """

    def __init__(self) -> None:
        self._young: set[IncomingBody] = set()  # added since the last tick
        self._old: set[IncomingBody] = set()  # running since before it
        self._ticking = False

    def add(self, body: IncomingBody) -> None:
        self._young.add(body)
        if not self._ticking:
            self._ticking = True
            body.loop.call_later(WATCH_DELAY, self._tick, body.loop)

    def discard(self, body: IncomingBody) -> None:
        self._young.discard(body)
        self._old.discard(body)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        due, self._old, self._young = self._old, self._young, set()
        for body in due:
            body.start_pump()
        self._ticking = bool(self._old)
        if self._ticking:
            loop.call_later(WATCH_DELAY, self._tick, loop)


class IncomingBody(LineReader):
    """``wsgi.input``: the body fed on the loop, read on the worker, under one lock."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_ahead: int,
        send_buffer: int,
        meter: BodyMeter | None = None,
        budget: ReadAheadBudget | None = None,
        eager: bool = False,  # a worker was free: read the body ahead before it starts
    ) -> None:
        self.loop = loop
        self.phase = WorkerPhase.QUEUED
        self.body_phase = BodyPhase.RECEIVING
        self.disconnected = False
        self.received = 0  # body bytes received, kept or not
        self._lock = threading.Lock()
        # Made by the first thread that has to wait: most requests never do, and a Condition
        # costs more to make than the rest of the exchange.
        self._cond: threading.Condition | None = None
        self._eager = eager
        self._read_ahead = read_ahead
        self._meter = meter
        self._budget = budget if budget is not None else ReadAheadBudget(read_ahead)
        self._accounted = 0  # the buffered bytes this request counts in _budget
        # Kept as they came, so a read the size of a message takes it uncopied.
        self._body: deque[bytes] = deque()
        self._body_len = 0  # unread bytes
        self._body_pos = 0  # bytes of _body[0] already read
        self._body_wanted = 0  # bytes the waiting worker needs; 0 when it is not waiting
        self._body_waiter: asyncio.Future[None] | None = None
        self._spooled: IO[bytes] | None = None
        self._sender_waiter: asyncio.Future[None] | None = None  # `WorkerExchange.respond`'s
        self._send_buffer = send_buffer
        self._start: HTTPResponseStartEvent | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._file_event: Message | None = None
        self._file_sent = False
        self._failure: BaseException | None = None
        self._late: Exception | None = None  # close() raised after a complete body
        self._watchman: Watchman | None = None
        self._receive: ASGIReceive | None = None
        self._pump: asyncio.Task[None] | None = None

    def _condition(self) -> threading.Condition:
        """With the lock held: the Condition waiting threads share, made on first use."""
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition(self._lock)
        return cond

    def _wait(self) -> None:
        """With the lock held: wait for a `_notify`."""
        self._condition().wait()

    def _notify(self) -> None:
        """With the lock held: wake every thread in `_wait` (each checks what it waits for)."""
        if self._cond is not None:
            self._cond.notify_all()

    def _drop_body(self) -> None:
        if self._body:
            self._body.clear()
            self._body_len = self._body_pos = 0

    def _charge(self) -> None:
        """On the loop: settle the shared budget with what the worker read since."""
        delta = self._body_len - self._accounted
        if delta:
            self._budget.used += delta
            self._accounted = self._body_len

    def _wake_body_pump(self) -> None:
        waiter = self._body_waiter
        if waiter is not None:
            self._body_waiter = None
            self._call_soon(waiter)

    def _call_soon(self, waiter: asyncio.Future[None]) -> None:
        """From the worker: wake ``waiter`` on the loop."""
        try:
            self.loop.call_soon_threadsafe(wake, waiter)
        except RuntimeError:
            self.disconnected = True  # the loop is closed: the server is gone, and the client

    def _close_spooled(self) -> None:
        # Our own reference: middleware may have replaced environ["wsgi.input"].
        if self._spooled is not None:
            self._spooled.close()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = _ALL
        with self._lock:
            self._wait_for(size)
            return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = _ALL if size is None or size < 0 else size
        with self._lock:
            while True:
                found = self._find_newline(limit)
                if found >= 0:
                    return self._take(found)
                if self._body_len >= limit or self.body_phase is not BodyPhase.RECEIVING:
                    return self._take(limit)
                self._wait_for(self._body_len + 1)

    def _wait_for(self, size: int) -> None:
        while self._body_len < size and self.body_phase is BodyPhase.RECEIVING:
            if self.disconnected:
                raise ClientDisconnected(GONE + " before sending the whole body")
            self._body_wanted = size
            self._wake_body_pump()
            self._wait()
        self._body_wanted = 0
        if self._body_len < size and self._meter is not None:
            self._meter.check()  # BodyPhase.REFUSED: the meter raises its error again

    def _take(self, size: int) -> bytes:
        body = self._body
        pieces: list[bytes] = []
        wanted = min(size, self._body_len)
        self._body_len -= wanted
        while wanted:
            first = body[0]
            pos = self._body_pos
            available = len(first) - pos
            if available <= wanted:
                pieces.append(first if pos == 0 else first[pos:])
                body.popleft()
                self._body_pos = 0
                wanted -= available
            else:
                pieces.append(first[pos : pos + wanted])
                self._body_pos = pos + wanted
                wanted = 0
        if self._body_waiter is not None and self._body_len < self._read_ahead // 2:
            self._wake_body_pump()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _find_newline(self, limit: int) -> int:
        """Bytes up to and including the first newline within ``limit``, or -1."""
        offset = 0
        pos = self._body_pos
        for chunk in self._body:
            end = chunk.find(b"\n", pos)
            if end >= 0:
                found = offset + end - pos + 1
                return found if found <= limit else -1
            offset += len(chunk) - pos
            if offset >= limit:
                return -1
            pos = 0
        return -1

    def _count(self, size: int) -> None:
        self.received += size
        if size and self._meter is not None:
            self._meter.count(size)

    def feed(self, message: Message) -> None:
        """Add an ``http.request`` message's body; none of it if it breaks ``max_body_size``."""
        data: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        with self._lock:
            try:
                self._count(len(data))
            except PeerProtocolError:
                self.body_phase = BodyPhase.REFUSED
                self._notify()
                raise
            if data and self.phase in KEEPS_BODY:
                size = len(data)
                self._body.append(data)
                self._body_len += size
                self._budget.used += size  # `_charge`, inlined: it runs for every message
                self._accounted += size
            if not more:
                self.body_phase = BodyPhase.COMPLETE
            if self._body_wanted and (self._body_len >= self._body_wanted or not more):
                self._notify()

    async def spool(self, receive: ASGIReceive, threshold: int) -> IO[bytes] | None:
        """The whole body in a temporary file (in memory up to ``threshold`` bytes), or None."""
        spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=threshold)  # noqa: SIM115
        try:
            while (message := await receive())["type"] == "http.request":
                data: bytes = message.get("body", b"")
                self._count(len(data))
                spooled.write(data)
                if not message.get("more_body", False):
                    spooled.seek(0)
                    with self._lock:
                        self.body_phase = BodyPhase.COMPLETE
                        self._spooled = spooled
                    return spooled
        except BaseException:
            spooled.close()
            raise
        _log.info("the client disconnected while sending the body; the app never ran")
        spooled.close()
        return None

    def watch(self, receive: ASGIReceive, watchman: Watchman) -> None:
        """Read the body ahead now if it is still coming; else have ``watchman`` start the
        watch for ``http.disconnect`` if the response is still running a tick or two later."""
        self._receive = receive
        if self.body_phase is BodyPhase.RECEIVING:
            self.start_pump()
        else:
            self._watchman = watchman
            watchman.add(self)

    def start_pump(self) -> None:
        if self._receive is not None:
            self._pump = self.loop.create_task(self.pump(self._receive))

    def stop_watching(self) -> None:
        # The task holds this exchange: kept, it would make a cycle only the cyclic GC frees.
        pump, self._pump, self._receive = self._pump, None, None
        if self._watchman is not None:
            self._watchman.discard(self)
        if pump is not None:
            pump.cancel()

    async def pump(self, receive: ASGIReceive) -> None:
        """Read the body ahead of the app, then watch for ``http.disconnect``."""
        loop = self.loop
        while True:
            if self.body_phase is BodyPhase.RECEIVING:
                with self._lock:
                    # Bounded even while the worker waits: it may take a while to get the GIL.
                    ahead = 0
                    if self.phase in READS_AHEAD or self._eager:
                        self._charge()
                        if self._budget.used < self._budget.limit:
                            ahead = self._read_ahead
                    full = self._body_len >= max(ahead, self._body_wanted)
                    if full:
                        self._body_waiter = waiter = loop.create_future()
                if full:
                    await waiter
                    continue
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                self.mark_disconnected()
                return
            if kind == "http.request" and self.body_phase is BodyPhase.RECEIVING:
                try:
                    self.feed(message)
                except PeerProtocolError:
                    return
            del message  # held across the next wait, it would keep bytes the app has read

    def wait_disconnected(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the client to leave; whether it has."""
        with self._lock:
            return self._condition().wait_for(lambda: self.disconnected, timeout)

    def mark_disconnected(self) -> None:
        """The client left (``http.disconnect``, a failed send, a cancelled request)."""
        with self._lock:
            self.disconnected = True
            if self.body_phase is BodyPhase.RECEIVING:
                # The app's next read fails anyway: free the read-ahead now.
                self._drop_body()
                self._charge()
            self._notify()
            waiter, self._sender_waiter = self._sender_waiter, None
        if waiter is not None:
            wake(waiter)


class Disconnection(threading.Event):
    """``environ["crossgate.disconnected"]``: a `threading.Event` that is set once the client
    has left, kept by the request's own lock and flag (a plain Event would make a second
    Condition for every request). crossgate alone sets it.

    Raises:
        CrossgateError: (from ``set`` and ``clear``) the app tried to change it.
    """

    # Every public method is its own: threading.Event's state is never made, nor read.
    def __init__(self, body: IncomingBody) -> None:
        self._body = body

    def is_set(self) -> bool:
        return self._body.disconnected

    def wait(self, timeout: float | None = None) -> bool:
        return self._body.wait_disconnected(timeout)

    def set(self) -> None:
        raise CrossgateError("crossgate.disconnected is set by crossgate, when the client leaves")

    def clear(self) -> None:
        raise CrossgateError("crossgate.disconnected cannot be cleared: the client has left")

    def __repr__(self) -> str:
        return f"<crossgate.disconnected: {'set' if self.is_set() else 'unset'}>"


class RequestBody(LineReader):
    """``wsgi.input`` in stream mode: the body's reads only, not the exchange's other methods."""

    __slots__ = ("_body",)

    def __init__(self, body: IncomingBody) -> None:
        self._body = body

    def read(self, size: int | None = -1) -> bytes:
        return self._body.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._body.readline(size)
