"""The ``crossgate`` command line: ``crossgate serve MODULE:ATTR`` (see ``crossgate --help``).

Also ``python -m crossgate``. The command needs no package beyond the server it starts.
"""

from __future__ import annotations

from crossgate.cli._main import main

__all__ = ["main"]
