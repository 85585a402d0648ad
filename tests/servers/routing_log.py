"""Logging for the routing server apps: crossgate's records, every level, on the server's log.

The routing server tests assert on what crossgate logged (a sub-app skipped at DEBUG, never an
error), so the app modules send the ``crossgate`` logger to stderr with the level on each line.
"""

from __future__ import annotations

import logging
import sys


def log_crossgate_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("crossgate-log %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("crossgate")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
