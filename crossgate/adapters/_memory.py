"""Giving the memory of finished request bodies back to the operating system.

Request bodies pass through the process in pieces of 64 KiB to 256 KiB, which the C allocator
serves from its heap. When a burst of uploads is over (or a storm of clients that announced a
large body and left), the pieces are freed, but glibc returns a heap page to the operating
system only from the top of the heap: a few live objects left higher up keep every freed page
below them in the process's RSS, for good. Measured under uvicorn: 500 abandoned uploads left a
worker 60 MiB above its baseline with every Python object already freed, and glibc's
``malloc_trim(0)`` took it back to within 10 MiB.

So once a burst of body bytes has gone through and the traffic has paused for half a second,
the adapter calls ``malloc_trim(0)`` (glibc, Linux; see malloc_trim(3)) through ctypes: it hands
the free pages anywhere in the heap back with ``madvise``. Elsewhere (musl, macOS, Windows)
there is no such call, and nothing happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sys
import threading
from collections.abc import Callable

__all__ = ["TRIM_AFTER_BYTES", "TRIM_DELAY", "TRIM_MAX_WAIT", "MemoryReleaser"]

_log = logging.getLogger("crossgate")

# Body bytes through the adapter before a trim is due: small bodies never trigger one.
TRIM_AFTER_BYTES = 16 * 1024 * 1024
# A due trim waits for this many seconds without body traffic, so that one trim follows a whole
# burst and a busy server does not give back memory it is about to use again...
TRIM_DELAY = 0.5
# ...but under traffic that never pauses, it runs at the latest this long after it fell due.
TRIM_MAX_WAIT = 10.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - tested on Linux
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process
    except OSError:  # pragma: no cover - a Linux process always has a C library
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:  # pragma: no cover - musl (Alpine) has no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_MALLOC_TRIM = _find_malloc_trim()


class MemoryReleaser:
    """Counts body bytes on one event loop and trims the C heap after each burst of them.

    Used on the event loop thread only. ``trim`` is the function to call (glibc's
    ``malloc_trim`` by default; None disables the releaser).
    """

    __slots__ = ("_due", "_handle", "_last", "_trim", "pending")

    def __init__(self, trim: Callable[[int], int] | None = _MALLOC_TRIM) -> None:
        self._trim = trim
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the pending trim fell due (loop time)
        self._last = 0.0  # when body bytes last went through (loop time)
        self.pending = 0

    @property
    def enabled(self) -> bool:
        return self._trim is not None

    def note(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        """``size`` more body bytes went through; a trim falls due once enough have."""
        trim = self._trim
        if trim is None:
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
        # A trim walks the whole heap (about 10 ms for a few hundred MiB): on a thread of its
        # own it never stalls the event loop, and ctypes releases the GIL for the call.
        # RuntimeError: the interpreter is shutting down, and the memory goes with it.
        with contextlib.suppress(RuntimeError):
            threading.Thread(target=_trim_now, args=(trim,), name="crossgate-trim").start()


def _trim_now(trim: Callable[[int], int]) -> None:
    released = trim(0)
    _log.debug("malloc_trim(0) after a burst of request bodies returned %d", released)
