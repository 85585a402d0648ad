"""The app object ``crossgate serve`` hands to the server as ``crossgate.cli._app:application``.

Servers that start workers or reload import their app by name in a fresh process; this module
rebuilds the served app there from the `ServedApp` the command left in the environment.
"""

from __future__ import annotations

from crossgate.cli._target import ServedApp

__all__ = ["application"]

application = ServedApp.from_environment().build()
