"""What ``crossgate serve`` serves: the user's object, found, checked and wrapped.

The command and every server process it leads to (uvicorn's and hypercorn's workers, granian's
workers, a reloader's fresh process, gunicorn's forked workers) build the served app the same
way, from one `ServedApp` the command passes on in the environment: each of those processes
imports `crossgate.cli._app`, which calls `ServedApp.from_environment().build()`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
from typing import Any, Literal, TypeAlias

from crossgate._logging import DATE_FORMAT, FORMAT
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.exceptions import CrossgateError
from crossgate.routing import App, asgi, is_asgi

__all__ = ["ADAPTER_OPTIONS", "ENVIRONMENT_KEY", "CommandLineError", "Interface", "ServedApp"]

Interface: TypeAlias = Literal["asgi", "wsgi"]
_Adapter: TypeAlias = type[WSGIToASGI] | type[ASGIToWSGI]

ENVIRONMENT_KEY = "CROSSGATE_SERVE_TARGET"

ADAPTER_OPTIONS: dict[str, dict[_Adapter, str]] = {
    "threads": {WSGIToASGI: "workers"},
    "queue_timeout": {WSGIToASGI: "queue_timeout"},
    "request_body": {WSGIToASGI: "request_body"},
    "mode": {ASGIToWSGI: "mode"},
    "lifespan": {ASGIToWSGI: "lifespan"},
    "max_body_size": {WSGIToASGI: "max_body_size", ASGIToWSGI: "max_body_size"},
}
"""The adapter options of ``crossgate serve`` (by argparse name): who takes each, as what."""

# Marks the handler `ServedApp` puts on the crossgate logger, so that a second configuration in
# the same process replaces it instead of adding another.
_HANDLER_NAME = "crossgate serve"


class CommandLineError(CrossgateError):
    """A mistake the user can fix: the command prints the message on one line and exits 2."""


@dataclasses.dataclass(frozen=True)
class ServedApp:
    """Everything needed to build the served app, in any process."""

    app: str
    """``MODULE:ATTR``, the object to serve (ATTR may be dotted)."""
    app_dir: str
    """Put first on ``sys.path`` before importing MODULE (uvicorn's ``--app-dir``)."""
    interface: Literal["auto", "asgi", "wsgi"]
    """What the object is; ``auto`` asks `crossgate.routing.is_asgi`."""
    served_as: tuple[Interface, ...]
    """The interfaces the server speaks; the object is wrapped when its own is not one."""
    options: dict[str, Any]
    """Adapter options by `ADAPTER_OPTIONS` name; the command checked the adapter takes each."""
    log_level: str
    """The ``crossgate`` logger's level."""

    def to_environment(self) -> None:
        """Leave this in the environment for the processes the server starts."""
        os.environ[ENVIRONMENT_KEY] = json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_environment(cls) -> ServedApp:
        """The `ServedApp` ``crossgate serve`` put in this process's environment.

        Raises:
            CommandLineError: the module was imported outside ``crossgate serve``.
        """
        raw = os.environ.get(ENVIRONMENT_KEY)
        if raw is None:
            raise CommandLineError(
                "crossgate.cli._app is what `crossgate serve` hands to the server; "
                "run `crossgate serve MODULE:ATTR` instead of importing it"
            )
        fields = json.loads(raw)
        fields["served_as"] = tuple(fields["served_as"])
        return cls(**fields)

    def resolve(self) -> tuple[App, Interface, _Adapter | None]:
        """Import the object ``app`` names; say what it is and what adapter it needs here.

        The kind is what ``--interface`` says or what `is_asgi` finds; the adapter is None when
        the server speaks that kind. First gives the ``crossgate`` logger its stderr handler.

        Raises:
            CommandLineError: ``app`` is not MODULE:ATTR, the import fails, the attribute is
                missing or is not callable (each with what to do about it).
        """
        self._log_to_stderr()
        app = self._import()
        if not callable(app):
            raise CommandLineError(
                f"{self.app} is a {type(app).__name__}, not a WSGI or ASGI application; "
                "MODULE:ATTR must name the app object itself"
            )
        kind: Interface = (
            ("asgi" if is_asgi(app) else "wsgi") if self.interface == "auto" else self.interface
        )
        if kind in self.served_as:
            return app, kind, None
        return app, kind, WSGIToASGI if kind == "wsgi" else ASGIToWSGI

    def _log_to_stderr(self) -> None:
        # Only the crossgate logger, with level and time, at log_level: the server configures
        # its own, and records stop here, so a root handler (if the app adds one) does not
        # print them twice.
        logger = logging.getLogger("crossgate")
        for old in [handler for handler in logger.handlers if handler.name == _HANDLER_NAME]:
            logger.removeHandler(old)
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(self.log_level.upper())
        logger.propagate = False

    def _import(self) -> object:
        module_name, colon, attrs = self.app.partition(":")
        if not colon or not module_name or not attrs:
            raise CommandLineError(
                f"{self.app!r} is not MODULE:ATTR; name the module and the app object in it, "
                "e.g. `crossgate serve myproject.wsgi:application`"
            )
        path = os.path.abspath(self.app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            missing = error.name if isinstance(error, ModuleNotFoundError) else None
            # The module itself (or a package above it) is missing, not one it imports.
            if missing is not None and f"{module_name}.".startswith(f"{missing}."):
                raise CommandLineError(
                    f"could not import module {module_name!r} ({error}); run from the "
                    "directory that contains it, or pass --app-dir"
                ) from None
            raise CommandLineError(
                f"importing {module_name!r} failed: {type(error).__name__}: {error}"
            ) from None
        found: object = module
        for attr in attrs.split("."):
            try:
                found = getattr(found, attr)
            except AttributeError:
                raise CommandLineError(
                    f"module {module_name!r} has no attribute {attrs!r}; "
                    "ATTR names the app object (e.g. app, application)"
                ) from None
        return found

    def build(self) -> object:
        """The app to give the server: the user's object, wrapped when its kind needs it.

        Raises:
            CommandLineError: see `resolve`.
        """
        app, kind, adapter = self.resolve()
        if adapter is not None:
            # The options' ranges were checked by the command's argument parser.
            options = {
                ADAPTER_OPTIONS[name][adapter]: value for name, value in self.options.items()
            }
            return adapter(app, **options)
        if kind == "asgi" and not is_asgi(app):
            # --interface asgi on an object the servers' own checks (like is_asgi) would not
            # take for ASGI 3, e.g. a plain function returning a coroutine: uvicorn would call
            # it as ASGI 2, hypercorn as WSGI. The marked wrapper has an async __call__.
            return asgi(app)
        return app
