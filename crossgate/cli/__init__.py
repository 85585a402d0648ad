"""The ``crossgate`` command line: ``crossgate serve MODULE:ATTR``, also ``python -m crossgate``."""

from __future__ import annotations

from crossgate.cli._main import main

__all__ = ["main"]
