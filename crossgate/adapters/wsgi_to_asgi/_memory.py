"""Giving the memory of finished request bodies back to the operating system.

glibc returns freed heap pages only from the top of the heap, so after a burst of uploads a few
live objects can keep every freed body page in the RSS for good (500 abandoned uploads left a
uvicorn worker 60 MiB above its baseline; ``malloc_trim(0)`` took it back to within 10 MiB).
So after a burst of body bytes and half a second of quiet, the adapter calls glibc's
``malloc_trim(0)`` (malloc_trim(3)); elsewhere (musl, macOS, Windows) nothing happens.
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
# A due trim waits for this many quiet seconds, so one trim follows a whole burst...
TRIM_DELAY = 0.5
# ...but under traffic that never pauses, it runs at the latest this long after it fell due.
TRIM_MAX_WAIT = 10.0


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - tested on Linux
        return None
    # The symbols already loaded into this process; musl (Alpine) has no malloc_trim.
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:  # pragma: no cover
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_MALLOC_TRIM = _find_malloc_trim()


class MemoryReleaser:
    """Counts body bytes on one event loop and calls ``trim`` after each burst of them
    (None disables it). Used on the event loop thread only."""

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
        # A trim walks the whole heap (~10 ms for a few hundred MiB): a thread of its own keeps
        # the loop running (ctypes releases the GIL). RuntimeError: the interpreter is exiting.
        with contextlib.suppress(RuntimeError):
            threading.Thread(target=_trim_now, args=(trim,), name="crossgate-trim").start()


def _trim_now(trim: Callable[[int], int]) -> None:
    _log.debug("malloc_trim(0) after a burst of request bodies returned %d", trim(0))
