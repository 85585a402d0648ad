"""A stand-in for `logging.lastResort` on the ``crossgate`` logger, in the servers' format: it
writes a record only when no other handler would see it (docs/servers.md, "Logs").
"""

from __future__ import annotations

import logging
import sys

__all__ = ["DATE_FORMAT", "FORMAT", "FallbackHandler", "install_fallback"]

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


class FallbackHandler(logging.Handler):
    """Writes crossgate's records to stderr, only when no other handler would."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        # sys.stderr at emit time, like lastResort: a server or test may have replaced it.
        stream = sys.stderr
        if stream is None:  # pythonw, or a daemon that closed it
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def handle(self, record: logging.LogRecord) -> bool:
        # The walk Logger.callHandlers makes, level checks included: does another handler see it?
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self and record.levelno >= h.level for h in logger.handlers):
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        return super().handle(record)


def install_fallback() -> FallbackHandler:
    """Put one `FallbackHandler` on the ``crossgate`` logger (once per process)."""
    logger = logging.getLogger("crossgate")
    handler = next((h for h in logger.handlers if isinstance(h, FallbackHandler)), None)
    if handler is None:
        handler = FallbackHandler()
        logger.addHandler(handler)
    return handler
