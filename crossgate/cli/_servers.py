"""One function per server: start it, through its own documented entry point, on the app.

crossgate is not a server. Each runner here hands ``crossgate.cli._app:application`` (the
user's object, wrapped when needed; see `crossgate.cli._target`) to the server the way that
server's documentation shows: uvicorn's ``uvicorn.run``, hypercorn's and daphne's command-line
entry points (called in this process, with the arguments their CLIs take), granian's
``Granian`` class, gunicorn's custom-application pattern (``BaseApplication``) and
``waitress.serve``. A runner returns when the server stops.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

from crossgate.cli._target import CommandLineError, Interface

__all__ = ["SERVERS", "Server", "Settings"]

APP = "crossgate.cli._app:application"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The server options of ``crossgate serve``."""

    host: str
    port: int
    workers: int | None
    reload: bool
    log_level: str
    interface: Interface
    """The interface the server serves the (possibly wrapped) app with."""
    imported_modules: frozenset[str]
    """Modules the command imported to check the app (gunicorn's workers import them anew)."""


@dataclasses.dataclass(frozen=True)
class Server:
    """What ``crossgate serve`` needs to know about one server."""

    name: str
    package: str
    """The import name that tells whether the server is installed."""
    install: str
    """What to ``pip install`` for it."""
    speaks: tuple[Interface, ...]
    """The interfaces it serves; an app of another kind is wrapped."""
    workers: bool
    reload: bool
    run: Callable[[Settings, Any], None]
    """Start the server on the built app (also importable as `APP`)."""
    no_workers: str = ""
    no_reload: str = ""

    def check(self, settings: Settings) -> None:
        """Refuse what this server cannot do, before starting anything.

        Raises:
            CommandLineError: the server is not installed, or lacks ``--workers``/``--reload``.
        """
        if importlib.util.find_spec(self.package) is None:
            raise CommandLineError(
                f"--server {self.name} needs the {self.name} package: pip install {self.install}"
            )
        if settings.workers is not None and not self.workers:
            raise CommandLineError(f"--workers: {self.no_workers}")
        if settings.reload and not self.reload:
            raise CommandLineError(f"--reload: {self.no_reload}")
        granian_reload = self.name == "granian" and settings.reload
        if granian_reload and importlib.util.find_spec("watchfiles") is None:
            raise CommandLineError(
                "--reload on granian needs watchfiles: pip install 'granian[reload]'"
            )


def _uvicorn(settings: Settings, app: Any) -> None:
    import uvicorn

    # A string, not the object: uvicorn imports it again in each worker and after a reload.
    target = APP if settings.workers or settings.reload else app
    uvicorn.run(
        target,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=settings.reload,
        log_level=settings.log_level,
    )


def _hypercorn(settings: Settings, app: Any) -> None:
    from hypercorn.__main__ import main

    arguments = [APP, "--bind", f"{settings.host}:{settings.port}"]
    arguments += ["--log-level", settings.log_level, "--access-logfile", "-"]
    if settings.workers is not None:
        arguments += ["--workers", str(settings.workers)]
    if settings.reload:
        arguments.append("--reload")
    main(arguments)


def _granian(settings: Settings, app: Any) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian(
        APP,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI if settings.interface == "asgi" else Interfaces.WSGI,
        workers=settings.workers or 1,
        reload=settings.reload,
        log_level=LogLevels(settings.log_level),
    ).serve()


def _daphne(settings: Settings, app: Any) -> None:
    from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]

    verbosity = {"debug": "2", "info": "1"}.get(settings.log_level, "0")
    arguments = ["--bind", settings.host, "--port", str(settings.port), "-v", verbosity]
    CommandLineInterface().run([*arguments, APP])


def _gunicorn(settings: Settings, app: Any) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class Application(BaseApplication):  # type: ignore[misc]
        """gunicorn's documented custom application: options in, the app from `load`."""

        def load_config(self) -> None:
            options: dict[str, object] = {
                "bind": f"{settings.host}:{settings.port}",
                "loglevel": settings.log_level,
                "accesslog": "-",
                "errorlog": "-",
                "reload": settings.reload,
            }
            if settings.workers is not None:
                options["workers"] = settings.workers
            # gunicorn 24+ opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl)
            # by default, so two servers started this way would fight over it; a development
            # command leaves it off.
            if "control_socket_disable" in self.cfg.settings:
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # In each worker, after the fork: the import builds the app there.
            return importlib.import_module("crossgate.cli._app").application

    # Each worker imports the app itself, as gunicorn does without --preload: the command
    # imported it here only to check it. A worker forked with the app already imported would
    # share whatever the import opened (connections, threads), and would serve the old code
    # after a --reload (the reason gunicorn's --reload does not work with --preload).
    # Installed packages stay: some C extensions cannot be imported twice in one process.
    for name in (*_project_modules(settings.imported_modules), "crossgate.cli._app"):
        sys.modules.pop(name, None)
    Application(prog="crossgate serve --server gunicorn").run()


def _project_modules(names: frozenset[str]) -> list[str]:
    """The modules among ``names`` that are not installed packages or the standard library."""
    paths = sysconfig.get_paths()
    installed = tuple(
        os.path.join(os.path.realpath(paths[key]), "")
        for key in ("purelib", "platlib", "stdlib", "platstdlib")
    )
    found = []
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file is not None and not os.path.realpath(file).startswith(installed):
            found.append(name)
    return found


def _waitress(settings: Settings, app: Any) -> None:
    import waitress  # type: ignore[import-untyped]

    waitress.serve(app, host=settings.host, port=settings.port)


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server("uvicorn", "uvicorn", "uvicorn", ("asgi",), True, True, _uvicorn),
        Server("hypercorn", "hypercorn", "hypercorn", ("asgi",), True, True, _hypercorn),
        Server("granian", "granian", "granian", ("asgi", "wsgi"), True, True, _granian),
        Server(
            "daphne",
            "daphne",
            "daphne",
            ("asgi",),
            False,
            False,
            _daphne,
            no_workers="daphne runs one process; start several behind a proxy, or use "
            "--server uvicorn",
            no_reload="daphne has no reloader; use --server uvicorn or hypercorn while developing",
        ),
        Server("gunicorn", "gunicorn", "gunicorn", ("wsgi",), True, True, _gunicorn),
        Server(
            "waitress",
            "waitress",
            "waitress",
            ("wsgi",),
            False,
            False,
            _waitress,
            no_workers="waitress runs one process (with threads); use --server gunicorn for "
            "worker processes",
            no_reload="waitress has no reloader; use --server gunicorn or uvicorn while developing",
        ),
    )
}
