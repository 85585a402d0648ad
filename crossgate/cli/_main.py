"""``crossgate`` and ``crossgate serve``: argument parsing and the one-line errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from crossgate.cli._servers import SERVERS, Settings
from crossgate.cli._target import ADAPTER_OPTIONS, CommandLineError, ServedApp

__all__ = ["main"]

_log = logging.getLogger("crossgate.cli")

_SERVE_DESCRIPTION = """\
Serve APP, a WSGI or ASGI application given as MODULE:ATTR, on a real server.

crossgate finds out whether APP is WSGI or ASGI, wraps it when the server speaks the other
interface (WSGIToASGI for a WSGI app on uvicorn, hypercorn or daphne; ASGIToWSGI for an ASGI
app on gunicorn or waitress; granian speaks both), and starts the server through its own
entry point. crossgate is not a server: for anything these options do not cover, run the
server itself on your app wrapped in WSGIToASGI or ASGIToWSGI.
"""

_SERVE_EPILOG = """\
examples:
  crossgate serve myproject.wsgi:application                  # Django, on uvicorn
  crossgate serve app:app --server gunicorn --workers 4       # FastAPI, on gunicorn
  crossgate serve app:app --server hypercorn --threads 16     # Flask, on hypercorn
"""


_N = TypeVar("_N", int, float)


def _checked(
    convert: Callable[[str], _N], what: str, rule: str, ok: Callable[[_N], bool]
) -> Callable[[str], _N]:
    """An argparse ``type``: ``convert`` the text, then refuse a value ``ok`` turns down."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}: {text!r}")
        return value

    return parse


_positive = _checked(int, "a whole number", "must be at least 1", lambda value: value >= 1)
_port = _checked(int, "a port number", "not a port number", lambda value: 0 <= value <= 65535)
_size = _checked(int, "a size in bytes", "must not be negative", lambda value: value >= 0)
_seconds = _checked(float, "a number of seconds", "must be positive", lambda value: value > 0)


def _parser() -> argparse.ArgumentParser:
    from crossgate import __version__

    parser = argparse.ArgumentParser(
        prog="crossgate",
        description="WSGI and ASGI, living together. Run `crossgate serve --help` for serving.",
    )
    parser.add_argument("--version", action="version", version=f"crossgate {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a WSGI or ASGI app (MODULE:ATTR) on uvicorn, hypercorn, granian, daphne, "
        "gunicorn or waitress",
        description=_SERVE_DESCRIPTION,
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="crossgate serve [OPTIONS] APP",
    )
    serve.add_argument("app", metavar="APP", help="the application, as MODULE:ATTR")
    server = serve.add_argument_group("server")
    server.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="uvicorn",
        help="the server to run  [default: uvicorn]",
    )
    server.add_argument(
        "--host", default="127.0.0.1", help="bind the socket to this host  [default: 127.0.0.1]"
    )
    server.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="bind the socket to this port  [default: 8000]",
    )
    server.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="number of worker processes (uvicorn, hypercorn, granian, gunicorn)  "
        "[default: the server's]",
    )
    server.add_argument(
        "--reload",
        action="store_true",
        help="restart when the code changes (uvicorn, hypercorn, granian, gunicorn)",
    )
    server.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="the server's and crossgate's log level  [default: info]",
    )
    app = serve.add_argument_group("application")
    app.add_argument(
        "--interface",
        choices=("auto", "wsgi", "asgi"),
        default="auto",
        help="what APP is; auto tells by whether it is async  [default: auto]",
    )
    app.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="look for MODULE in this directory first  [default: the current directory]",
    )
    adapter = serve.add_argument_group(
        "adapter", "Options of the adapter crossgate wraps APP in; refused when there is none."
    )
    adapter.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="WSGIToASGI: threads running WSGI requests  [default: 32]",
    )
    adapter.add_argument(
        "--queue-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="WSGIToASGI: seconds a request waits for a free thread before a 503  "
        "[default: no limit]",
    )
    adapter.add_argument(
        "--request-body",
        choices=("stream", "spool"),
        help="WSGIToASGI: stream the body to the app, or read it all first  [default: stream]",
    )
    adapter.add_argument(
        "--mode",
        choices=("auto", "inline", "shared"),
        help="ASGIToWSGI: where the ASGI app's event loop runs  [default: auto]",
    )
    adapter.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        help="ASGIToWSGI: run the ASGI app's lifespan  [default: auto]",
    )
    adapter.add_argument(
        "--max-body-size",
        type=_size,
        metavar="BYTES",
        help="both: answer 413 to request bodies larger than this many bytes  [default: no limit]",
    )
    return parser


def _serve(arguments: argparse.Namespace) -> None:
    server = SERVERS[arguments.server]
    served = ServedApp(
        app=arguments.app,
        app_dir=arguments.app_dir,
        interface=arguments.interface,
        served_as=server.speaks,
        options={
            name: getattr(arguments, name)
            for name in ADAPTER_OPTIONS
            if getattr(arguments, name) is not None
        },
        log_level=arguments.log_level,
    )
    before = frozenset(sys.modules)
    _, kind, adapter = served.resolve()
    for name in served.options:
        # Refused rather than ignored: an option that silently does nothing misleads.
        if adapter not in ADAPTER_OPTIONS[name]:
            wanted = [taker.__name__ for taker in ADAPTER_OPTIONS[name]]
            through = "as it is" if adapter is None else f"through {adapter.__name__}"
            raise CommandLineError(
                f"--{name.replace('_', '-')} is a {' / '.join(wanted)} option, but "
                f"{server.name} serves {served.app} {through}; "
                f"drop it or pick a --server that needs {wanted[0]}"
            )
    settings = Settings(
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        reload=arguments.reload,
        log_level=arguments.log_level,
        interface=kind if adapter is None else server.speaks[0],
        imported_modules=frozenset(sys.modules) - before,
    )
    server.check(settings)
    # Every process the server starts builds the app from this (crossgate.cli._app); so does
    # this one, now, so that a failure shows before the server starts.
    served.to_environment()
    importlib.import_module("crossgate.cli._app")

    _log.info(
        "serving %s (%s, %s) on %s at http://%s:%d",
        arguments.app,
        kind.upper(),
        "as it is" if adapter is None else f"wrapped in {adapter.__name__}",
        server.name,
        arguments.host,
        arguments.port,
    )
    server.run(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crossgate`` command; returns the exit status (2 for a usage error).

    A mistake the user can fix prints one line, ``crossgate: error: ...``, and no traceback.
    """
    arguments = _parser().parse_args(argv)
    try:
        _serve(arguments)  # the one command
    except CommandLineError as error:
        print(f"crossgate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
