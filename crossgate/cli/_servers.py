"""``crossgate serve``: the app, built alike in every server process, and the six servers."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import logging
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from crossgate._logging import DATE_FORMAT, FORMAT
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.exceptions import CrossgateError
from crossgate.routing import App, asgi, is_asgi

__all__ = ["SERVERS", "CommandLineError", "ServeCommand", "run"]

Interface: TypeAlias = Literal["asgi", "wsgi"]
_Adapter: TypeAlias = type[WSGIToASGI] | type[ASGIToWSGI]

ENVIRONMENT_KEY = "CROSSGATE_SERVE_TARGET"

# By argparse name: the adapters that take each option, and as what.
ADAPTER_OPTIONS: dict[str, dict[_Adapter, str]] = {
    "threads": {WSGIToASGI: "workers"},
    "queue_timeout": {WSGIToASGI: "queue_timeout"},
    "request_body": {WSGIToASGI: "request_body"},
    "mode": {ASGIToWSGI: "mode"},
    "lifespan": {ASGIToWSGI: "lifespan"},
    "max_body_size": {WSGIToASGI: "max_body_size", ASGIToWSGI: "max_body_size"},
}

_HANDLER_NAME = "crossgate serve"

_log = logging.getLogger("crossgate.cli")


class CommandLineError(CrossgateError):
    """A mistake the user can fix: the command prints the message on one line and exits 2."""


@dataclasses.dataclass(frozen=True)
class ServeCommand:
    """The ``crossgate serve`` command line: what every process needs to build the app."""

    app: str
    server: str
    host: str
    port: int
    workers: int | None
    reload: bool
    log_level: str
    interface: Literal["auto", "asgi", "wsgi"]
    app_dir: str
    options: dict[str, Any]  # the adapter's, by ADAPTER_OPTIONS name

    @classmethod
    def from_environment(cls) -> ServeCommand:
        raw = os.environ.get(ENVIRONMENT_KEY)
        if raw is None:
            raise CommandLineError(
                "crossgate.cli._app is what `crossgate serve` hands to the server; "
                "run `crossgate serve MODULE:ATTR` instead of importing it"
            )
        return cls(**json.loads(raw))

    def resolve(self) -> tuple[App, Interface, _Adapter | None]:
        """Import the object; its kind, and the adapter it needs on the server (or None)."""
        # Not propagated: a root handler the app adds would print the records twice.
        logger = logging.getLogger("crossgate")
        if _HANDLER_NAME not in [handler.name for handler in logger.handlers]:
            handler = logging.StreamHandler(sys.stderr)
            handler.set_name(_HANDLER_NAME)
            handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
            logger.addHandler(handler)
        logger.setLevel(self.log_level.upper())
        logger.propagate = False
        app = self._import()
        if not callable(app):
            raise CommandLineError(
                f"{self.app} is a {type(app).__name__}, not a WSGI or ASGI application; "
                "MODULE:ATTR must name the app object itself"
            )
        kind: Interface = (
            ("asgi" if is_asgi(app) else "wsgi") if self.interface == "auto" else self.interface
        )
        speaks = SERVERS[self.server].speaks
        adapter = None if kind in speaks else (WSGIToASGI if kind == "wsgi" else ASGIToWSGI)
        for name in self.options:
            # Refused rather than ignored: an option that silently does nothing misleads.
            if adapter not in ADAPTER_OPTIONS[name]:
                wanted = [taker.__name__ for taker in ADAPTER_OPTIONS[name]]
                through = "as it is" if adapter is None else f"through {adapter.__name__}"
                raise CommandLineError(
                    f"--{name.replace('_', '-')} is a {' / '.join(wanted)} option, but "
                    f"{self.server} serves {self.app} {through}; "
                    f"drop it or pick a --server that needs {wanted[0]}"
                )
        return app, kind, adapter

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
        try:
            return functools.reduce(getattr, attrs.split("."), module)
        except AttributeError:
            raise CommandLineError(
                f"module {module_name!r} has no attribute {attrs!r}; "
                "ATTR names the app object (e.g. app, application)"
            ) from None

    def build(self) -> object:
        """The user's object, wrapped when the server speaks the other interface."""
        app, kind, adapter = self.resolve()
        if adapter is not None:
            options = {
                ADAPTER_OPTIONS[name][adapter]: value for name, value in self.options.items()
            }
            return adapter(app, **options)
        # --interface asgi on what is_asgi takes for WSGI: uvicorn would call it as ASGI 2.
        return asgi(app) if kind == "asgi" and not is_asgi(app) else app


APP = "crossgate.cli._app:application"


@dataclasses.dataclass(frozen=True)
class Server:
    name: str  # on the command line, on PyPI and as an import
    speaks: tuple[Interface, ...]
    run: Callable[[ServeCommand], None]
    no_workers: str = ""  # why --workers is refused, if it is
    no_reload: str = ""
    reload_needs: str = ""  # what the server's "reload" extra brings
    forks: bool = False  # its workers fork from this process: see run()


def _uvicorn(command: ServeCommand) -> None:
    import uvicorn

    # A string, not the object: uvicorn imports it again in each worker and after a reload.
    uvicorn.run(
        APP,
        host=command.host,
        port=command.port,
        workers=command.workers,
        reload=command.reload,
        log_level=command.log_level,
    )


def _hypercorn(command: ServeCommand) -> None:
    from hypercorn.__main__ import main

    arguments = [APP, "--bind", f"{command.host}:{command.port}", "--access-logfile", "-"]
    arguments += ["--log-level", command.log_level]
    if command.workers is not None:
        arguments += ["--workers", str(command.workers)]
    if command.reload:
        arguments.append("--reload")
    main(arguments)


def _granian(command: ServeCommand) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian(
        APP,
        address=command.host,
        port=command.port,
        interface=Interfaces(command.interface),
        workers=command.workers or 1,
        reload=command.reload,
        log_level=LogLevels(command.log_level),
    ).serve()


def _daphne(command: ServeCommand) -> None:
    from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]

    verbosity = {"debug": "2", "info": "1"}.get(command.log_level, "0")
    arguments = ["--bind", command.host, "--port", str(command.port), "-v", verbosity]
    CommandLineInterface().run([*arguments, APP])


def _gunicorn(command: ServeCommand) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{command.host}:{command.port}",
                "loglevel": command.log_level,
                "accesslog": "-",
                "errorlog": "-",
                "reload": command.reload,
                "workers": command.workers,
                # gunicorn 24+: two servers would fight over its control socket's fixed path.
                "control_socket_disable": True,
            }
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> object:
            from crossgate.cli._app import application  # in each worker, after the fork

            return application

    Application(prog="crossgate serve --server gunicorn").run()


def _waitress(command: ServeCommand) -> None:
    import waitress  # type: ignore[import-untyped]

    from crossgate.cli._app import application

    waitress.serve(application, host=command.host, port=command.port)


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
        Server("gunicorn", ("wsgi",), _gunicorn, forks=True),
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


def run(**arguments: Any) -> None:
    """Run ``crossgate serve`` with these parsed arguments."""
    given = {name: arguments.pop(name) for name in ADAPTER_OPTIONS}
    options = {name: value for name, value in given.items() if value is not None}
    command = ServeCommand(**arguments, options=options)
    before = frozenset(sys.modules)
    _, kind, adapter = command.resolve()
    imported = frozenset(sys.modules) - before
    server = SERVERS[command.server]
    if importlib.util.find_spec(server.name) is None:
        raise CommandLineError(
            f"--server {server.name} needs the {server.name} package: pip install {server.name}"
        )
    for option, refusal in (("workers", server.no_workers), ("reload", server.no_reload)):
        if getattr(command, option) and refusal:
            raise CommandLineError(f"--{option}: {refusal}")
    if command.reload and server.reload_needs and not importlib.util.find_spec(server.reload_needs):
        raise CommandLineError(
            f"--reload on {server.name} needs {server.reload_needs}: "
            f"pip install '{server.name}[reload]'"
        )
    # Every process then serves the kind found here; granian needs it for its interface.
    command = dataclasses.replace(command, interface=kind)
    # Build it here too, as every server process will, so that a failure shows before the start.
    os.environ[ENVIRONMENT_KEY] = json.dumps(dataclasses.asdict(command))
    importlib.import_module("crossgate.cli._app")
    how = "as it is" if adapter is None else f"wrapped in {adapter.__name__}"
    where = f"{server.name} at http://{command.host}:{command.port}"
    _log.info("serving %s (%s, %s) on %s", command.app, kind.upper(), how, where)
    if server.forks:
        # Each forked worker imports the app anew (as without gunicorn --preload), not sharing
        # what it opened; installed packages stay (some C extensions cannot be imported twice).
        paths = sysconfig.get_paths()
        installed = tuple(
            os.path.join(os.path.realpath(paths[key]), "")
            for key in ("purelib", "platlib", "stdlib", "platstdlib")
        )
        for name in imported:
            file = getattr(sys.modules.get(name), "__file__", None)
            if file is not None and not os.path.realpath(file).startswith(installed):
                del sys.modules[name]
        sys.modules.pop("crossgate.cli._app", None)
    server.run(command)
