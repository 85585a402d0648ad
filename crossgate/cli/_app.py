"""The app object ``crossgate serve`` hands to the server as ``crossgate.cli._app:application``.

Servers that start workers or reload import their app by name in a fresh process; this module
rebuilds the served app there from the `Target` the command left in the environment.
"""

from __future__ import annotations

from typing import Any

from crossgate.cli._target import Target

__all__ = ["application"]

application: Any = Target.from_environment().build()
