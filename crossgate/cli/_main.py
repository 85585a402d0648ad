"""``crossgate`` and ``crossgate serve``: argument parsing and the one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from crossgate.cli._servers import SERVERS, Settings
from crossgate.cli._target import CommandLineError, Target

__all__ = ["main"]

_log = logging.getLogger("crossgate.cli")

_LEVELS = ("critical", "error", "warning", "info", "debug")

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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
        metavar="PORT",
        help="bind the socket to this port  [default: 8000]",
    )
    server.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        default=None,
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
        choices=_LEVELS,
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


_WSGI_TO_ASGI = {"threads": "workers", "queue_timeout": "queue_timeout"}
_WSGI_TO_ASGI_ONLY = ("threads", "queue_timeout", "request_body")
_ASGI_TO_WSGI_ONLY = ("mode", "lifespan")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _adapter_options(arguments: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    given = {
        name: getattr(arguments, name)
        for name in (*_WSGI_TO_ASGI_ONLY, *_ASGI_TO_WSGI_ONLY, "max_body_size")
        if getattr(arguments, name) is not None
    }
    wsgi_to_asgi = {
        _WSGI_TO_ASGI.get(name, name): value
        for name, value in given.items()
        if name not in _ASGI_TO_WSGI_ONLY
    }
    asgi_to_wsgi = {name: value for name, value in given.items() if name not in _WSGI_TO_ASGI_ONLY}
    return wsgi_to_asgi, asgi_to_wsgi


def _check_adapter_options(arguments: argparse.Namespace, adapter: str | None) -> None:
    """Refuse adapter options that would do nothing (a silent no-op misleads)."""
    for name in (*_WSGI_TO_ASGI_ONLY, *_ASGI_TO_WSGI_ONLY, "max_body_size"):
        if getattr(arguments, name) is None:
            continue
        wanted = (
            ("WSGIToASGI",)
            if name in _WSGI_TO_ASGI_ONLY
            else ("ASGIToWSGI",)
            if name in _ASGI_TO_WSGI_ONLY
            else ("WSGIToASGI", "ASGIToWSGI")
        )
        if adapter not in wanted:
            served = "as it is" if adapter is None else f"through {adapter}"
            raise CommandLineError(
                f"{_option(name)} is a {' / '.join(wanted)} option, but {arguments.server} "
                f"serves {arguments.app} {served}; drop it or pick a --server that needs "
                f"{wanted[0]}"
            )


def _serve(arguments: argparse.Namespace) -> None:
    server = SERVERS[arguments.server]
    wsgi_to_asgi, asgi_to_wsgi = _adapter_options(arguments)
    target = Target(
        app=arguments.app,
        app_dir=arguments.app_dir,
        interface=arguments.interface,
        served_as=server.speaks,
        wsgi_to_asgi=wsgi_to_asgi,
        asgi_to_wsgi=asgi_to_wsgi,
        log_level=arguments.log_level,
    )
    before = frozenset(sys.modules)
    target.configure_logging()
    app = target.load()
    kind = target.kind(app)
    adapter = target.adapter(kind)
    _check_adapter_options(arguments, None if adapter is None else adapter.__name__)
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
    # Every process the server starts builds the app from this (crossgate.cli._app).
    target.to_environment()
    from crossgate.cli import _app

    how = "as it is" if adapter is None else f"wrapped in {adapter.__name__}"
    _log.info(
        "serving %s (%s, %s) on %s at http://%s:%d",
        arguments.app,
        kind.upper(),
        how,
        server.name,
        arguments.host,
        arguments.port,
    )
    server.run(settings, _app.application)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crossgate`` command; returns the exit status (2 for a usage error).

    A mistake the user can fix prints one line, ``crossgate: error: ...``, and no traceback.
    """
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "serve":
            _serve(arguments)
    except CommandLineError as error:
        print(f"crossgate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
