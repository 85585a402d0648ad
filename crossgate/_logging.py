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

    def handle(self, record: logging.LogRecord) -> bool:
        if self._another_handler_sees(record):
            return False
        return super().handle(record)

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

    def _another_handler_sees(self, record: logging.LogRecord) -> bool:
        # The walk Logger.callHandlers makes, level checks included.
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self and record.levelno >= handler.level:
                    return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


def install_fallback() -> FallbackHandler:
    """Put one `FallbackHandler` on the ``crossgate`` logger (once per process)."""
    logger = logging.getLogger("crossgate")
    for handler in logger.handlers:
        if isinstance(handler, FallbackHandler):
            return handler
    handler = FallbackHandler()
    logger.addHandler(handler)
    return handler
