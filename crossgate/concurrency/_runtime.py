"""crossgate's one loop-thread class, and the one place that registers fork and exit hooks."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Coroutine
from typing import Any, TypeVar

_log = logging.getLogger("crossgate.concurrency")

T = TypeVar("T")
Callback = TypeVar("Callback", bound=Callable[[], None])

STOP_TIMEOUT = 2.0


def after_fork_in_child(callback: Callback) -> Callback:
    os.register_at_fork(after_in_child=callback)
    return callback


at_exit = atexit.register  # which runs the later first, and the others if one fails


STUCK_TASKS: list[asyncio.Task[Any]] = []  # never collected: a pending task's destructor logs


async def cancel_tasks(timeout: float, keep: Collection[asyncio.Task[Any]] = ()) -> None:
    """Cancel every task but the caller and ``keep``; wait at most ``timeout`` s for them."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and t not in keep]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if pending:
        _log.warning(
            "%d task(s) still running on %s %.1f s after being cancelled: %r",
            len(pending),
            threading.current_thread().name,
            timeout,
            pending,
        )
        STUCK_TASKS.extend(pending)


def finish_loop(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """End a stopped loop as `asyncio.run` does, but for ``shutdown_default_executor()``."""
    # That one joins the executor's threads without a bound on 3.11: one blocked to_thread hangs.
    try:
        loop.run_until_complete(cancel_tasks(timeout))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


class LoopThread:
    """An event loop running in its own daemon thread until `stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._timeout = STOP_TIMEOUT
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # One more turn, so that a cancellation requested just before the stop reaches its task.
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            asyncio.set_event_loop(None)
            finish_loop(loop, self._timeout)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result; from another thread only."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        """`call` for shutdown work: a timeout is logged, not raised."""
        try:
            self.call(coro, timeout)
        except TimeoutError:  # pragma: no cover - every step of shutdown is bounded itself
            _log.warning("%s did not finish shutting down in %.1f s", self.thread.name, timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the loop, waiting up to ``timeout`` s for its tasks; again, does nothing."""
        self._timeout = timeout
        with contextlib.suppress(RuntimeError):  # closed: stopped already
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2 * timeout + 1)
        if self.thread.is_alive():  # pragma: no cover - only when the app blocks the loop
            _log.warning("%s did not stop within %.1f s", self.thread.name, 2 * timeout + 1)
