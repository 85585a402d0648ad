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
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable

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
    """Its name on the command line, on PyPI and as an import."""
    speaks: tuple[Interface, ...]
    """The interfaces it serves; an app of another kind is wrapped."""
    run: Callable[[Settings], None]
    """Start the server on `APP`; returns when the server stops."""
    no_workers: str = ""
    """Why ``--workers`` is refused; empty when the server has worker processes."""
    no_reload: str = ""
    """Why ``--reload`` is refused; empty when the server has a reloader."""
    reload_needs: str = ""
    """A package ``--reload`` needs besides the server (its ``reload`` extra brings it)."""

    def check(self, settings: Settings) -> None:
        """Refuse what this server cannot do, before starting anything.

        Raises:
            CommandLineError: the server (or what its ``--reload`` needs) is not installed, or
                it lacks ``--workers``/``--reload``.
        """
        if importlib.util.find_spec(self.name) is None:
            raise CommandLineError(
                f"--server {self.name} needs the {self.name} package: pip install {self.name}"
            )
        if settings.workers is not None and self.no_workers:
            raise CommandLineError(f"--workers: {self.no_workers}")
        if settings.reload and self.no_reload:
            raise CommandLineError(f"--reload: {self.no_reload}")
        if (
            settings.reload
            and self.reload_needs
            and importlib.util.find_spec(self.reload_needs) is None
        ):
            raise CommandLineError(
                f"--reload on {self.name} needs {self.reload_needs}: "
                f"pip install '{self.name}[reload]'"
            )


def _uvicorn(settings: Settings) -> None:
    import uvicorn

    # A string, not the object: uvicorn imports it again in each worker and after a reload.
    uvicorn.run(
        APP,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=settings.reload,
        log_level=settings.log_level,
    )


def _hypercorn(settings: Settings) -> None:
    from hypercorn.__main__ import main

    arguments = [APP, "--bind", f"{settings.host}:{settings.port}"]
    arguments += ["--log-level", settings.log_level, "--access-logfile", "-"]
    if settings.workers is not None:
        arguments += ["--workers", str(settings.workers)]
    if settings.reload:
        arguments.append("--reload")
    main(arguments)


def _granian(settings: Settings) -> None:
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


def _daphne(settings: Settings) -> None:
    from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]

    verbosity = {"debug": "2", "info": "1"}.get(settings.log_level, "0")
    arguments = ["--bind", settings.host, "--port", str(settings.port), "-v", verbosity]
    CommandLineInterface().run([*arguments, APP])


def _gunicorn(settings: Settings) -> None:
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

        def load(self) -> object:
            # In each worker, after the fork: the import builds the app there.
            from crossgate.cli._app import application

            return application

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


def _waitress(settings: Settings) -> None:
    import waitress  # type: ignore[import-untyped]

    from crossgate.cli._app import application

    waitress.serve(application, host=settings.host, port=settings.port)


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server("uvicorn", ("asgi",), _uvicorn),
        Server("hypercorn", ("asgi",), _hypercorn),
        Server("granian", ("asgi", "wsgi"), _granian, reload_needs="watchfiles"),
        Server(
            "daphne",
            ("asgi",),
            _daphne,
            no_workers="daphne runs one process; start several behind a proxy, or use "
            "--server uvicorn",
            no_reload="daphne has no reloader; use --server uvicorn or hypercorn while developing",
        ),
        Server("gunicorn", ("wsgi",), _gunicorn),
        Server(
            "waitress",
            ("wsgi",),
            _waitress,
            no_workers="waitress runs one process (with threads); use --server gunicorn for "
            "worker processes",
            no_reload="waitress has no reloader; use --server gunicorn or uvicorn while developing",
        ),
    )
}
