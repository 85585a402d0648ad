"""What ``crossgate serve`` serves: the user's object, found, checked and wrapped.

The command and every server process it leads to (uvicorn's and hypercorn's workers, granian's
workers, a reloader's fresh process, gunicorn's forked workers) build the served app the same
way, from one `Target` the command passes on in the environment: each of those processes
imports `crossgate.cli._app`, which calls `Target.from_environment().build()`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
from typing import Any, Literal

from crossgate._logging import DATE_FORMAT, FORMAT
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.exceptions import CrossgateError
from crossgate.routing import asgi, is_asgi

__all__ = ["ENVIRONMENT_KEY", "CommandLineError", "Interface", "Target"]

Interface = Literal["asgi", "wsgi"]

ENVIRONMENT_KEY = "CROSSGATE_SERVE_TARGET"


class CommandLineError(CrossgateError):
    """A mistake the user can fix: the command prints the message on one line and exits 2."""


class _ServeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``crossgate serve`` puts on the ``crossgate`` logger (marked, so that a
    second configuration in the same process replaces it instead of adding another)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Everything needed to build the served app, in any process."""

    app: str
    """``MODULE:ATTR``, the object to serve (ATTR may be dotted)."""
    app_dir: str
    """Put first on ``sys.path`` before importing MODULE (uvicorn's ``--app-dir``)."""
    interface: Literal["auto", "asgi", "wsgi"]
    """What the object is; ``auto`` asks `crossgate.routing.is_asgi`."""
    served_as: tuple[Interface, ...]
    """The interfaces the server speaks; the object is wrapped when its own is not one."""
    wsgi_to_asgi: dict[str, Any]
    """`WSGIToASGI` options, used when a WSGI app goes to an ASGI server."""
    asgi_to_wsgi: dict[str, Any]
    """`ASGIToWSGI` options, used when an ASGI app goes to a WSGI server."""
    log_level: str
    """The ``crossgate`` logger's level."""

    def to_environment(self) -> None:
        os.environ[ENVIRONMENT_KEY] = json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_environment(cls) -> Target:
        """The target ``crossgate serve`` put in this process's environment.

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

    def load(self) -> object:
        """Import the object ``app`` names.

        Raises:
            CommandLineError: the string is malformed, the import fails, or the attribute is
                missing (each with what to do about it).
        """
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
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                raise CommandLineError(
                    f"could not import module {module_name!r} ({error}); run from the "
                    "directory that contains it, or pass --app-dir"
                ) from None
            raise CommandLineError(
                f"importing {module_name!r} failed: {type(error).__name__}: {error}"
            ) from None
        except Exception as error:
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

    def kind(self, app: object) -> Interface:
        """WSGI or ASGI, as ``--interface`` says or as `is_asgi` finds.

        Raises:
            CommandLineError: ``app`` is not callable.
        """
        if not callable(app):
            raise CommandLineError(
                f"{self.app} is a {type(app).__name__}, not a WSGI or ASGI application; "
                "MODULE:ATTR must name the app object itself"
            )
        if self.interface != "auto":
            return self.interface
        return "asgi" if is_asgi(app) else "wsgi"

    def adapter(self, kind: Interface) -> type[WSGIToASGI] | type[ASGIToWSGI] | None:
        """The adapter an app of this ``kind`` needs on this server (None: served as it is)."""
        if kind in self.served_as:
            return None
        return WSGIToASGI if kind == "wsgi" else ASGIToWSGI

    def build(self) -> Any:
        """The app to give the server: the user's object, wrapped when its kind needs it.

        Also configures the ``crossgate`` logger, in this process (see `configure_logging`).

        Raises:
            CommandLineError: see `load` and `kind`.
        """
        self.configure_logging()
        app = self.load()
        kind = self.kind(app)
        adapter = self.adapter(kind)
        # The options' ranges were checked by the command's argument parser.
        if adapter is WSGIToASGI:
            return WSGIToASGI(app, **self.wsgi_to_asgi)  # type: ignore[arg-type]
        if adapter is ASGIToWSGI:
            return ASGIToWSGI(app, **self.asgi_to_wsgi)  # type: ignore[arg-type]
        if kind == "asgi" and callable(app) and not is_asgi(app):
            # --interface asgi on an object the servers' own checks (like is_asgi) would not
            # take for ASGI 3, e.g. a plain function returning a coroutine: uvicorn would call
            # it as ASGI 2, hypercorn as WSGI. The marked wrapper has an async __call__.
            return asgi(app)
        return app

    def configure_logging(self) -> None:
        """Give the ``crossgate`` logger a stderr handler with level and time, at ``log_level``.

        Only the ``crossgate`` logger: the server keeps configuring its own, and records do
        not propagate further, so a root handler (if the app adds one) does not print them
        twice.
        """
        logger = logging.getLogger("crossgate")
        for handler in list(logger.handlers):
            if isinstance(handler, _ServeHandler):
                logger.removeHandler(handler)
        handler = _ServeHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(self.log_level.upper())
        logger.propagate = False
