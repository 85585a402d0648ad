"""Exceptions raised by `crossgate.concurrency`."""

from __future__ import annotations

from crossgate.exceptions import CrossgateError

__all__ = ["ConcurrencyError", "DeadlockError"]


class ConcurrencyError(CrossgateError, RuntimeError):
    """A sync/async helper was used where it cannot work.

    Raised, for example, by `async_to_sync` on a thread that runs an event loop (``await``
    the coroutine instead), or by a thread-sensitive call made after its
    `ThreadSensitiveContext` exited. It is a `RuntimeError`, as asgiref's equivalents are,
    so code written against asgiref keeps catching it.
    """


class DeadlockError(ConcurrencyError):
    """Thread-sensitive work was submitted from the very thread that would have to run it.

    That thread is busy running the code that waits for the work, so the call could never
    start: crossgate raises this instead of hanging. The message names the thread.
    """

    def __init__(self, message: str, *, thread_name: str) -> None:
        super().__init__(message)
        self.thread_name = thread_name
