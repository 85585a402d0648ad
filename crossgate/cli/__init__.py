"""The ``crossgate`` command line: ``crossgate serve MODULE:ATTR``, also ``python -m crossgate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from crossgate import __version__
from crossgate.cli._servers import SERVERS, CommandLineError, run

__all__ = ["main"]

_SERVE_DESCRIPTION = """\
Serve APP, a WSGI or ASGI application given as MODULE:ATTR, on a real server.

crossgate wraps APP when the server speaks the other interface (WSGIToASGI on uvicorn,
hypercorn or daphne; ASGIToWSGI on gunicorn or waitress; granian speaks both) and starts the
server through its own entry point. crossgate is not a server: for what these options do not
cover, run the server itself on your app wrapped in WSGIToASGI or ASGIToWSGI.
"""

_SERVE_EPILOG = """\
examples:
  crossgate serve myproject.wsgi:application                  # Django, on uvicorn
  crossgate serve app:app --server gunicorn --workers 4       # FastAPI, on gunicorn
  crossgate serve app:app --server hypercorn --threads 16     # Flask, on hypercorn
"""

_DEFAULT = "[default: %(default)s]"


def _checked(
    convert: Callable[[str], float], what: str, rule: str, ok: Callable[[float], bool]
) -> Callable[[str], float]:
    """An argparse ``type``: ``convert`` the text, then refuse a value ``ok`` turns down."""

    def parse(text: str) -> float:
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
    parser = argparse.ArgumentParser(
        prog="crossgate",
        description="WSGI and ASGI, living together. Run `crossgate serve --help` for serving.",
    )
    parser.add_argument("--version", action="version", version=f"crossgate {__version__}")
    serve = parser.add_subparsers(metavar="COMMAND", required=True).add_parser(
        "serve",
        help="serve a WSGI or ASGI app (MODULE:ATTR) on uvicorn, hypercorn, granian, daphne, "
        "gunicorn or waitress",
        description=_SERVE_DESCRIPTION,
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="crossgate serve [OPTIONS] APP",
    )
    serve.add_argument("app", metavar="APP", help="the application, as MODULE:ATTR")
    server = serve.add_argument_group(
        "server", "--workers and --reload work on uvicorn, hypercorn, granian and gunicorn."
    )
    server.add_argument("--server", choices=sorted(SERVERS), default="uvicorn", help=_DEFAULT)
    server.add_argument("--host", default="127.0.0.1", help="bind to this host " + _DEFAULT)
    server.add_argument("--port", type=_port, default=8000, help="bind to this port " + _DEFAULT)
    server.add_argument(
        "--workers", type=_positive, metavar="N", help="worker processes [default: the server's]"
    )
    server.add_argument("--reload", action="store_true", help="restart when the code changes")
    server.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="the server's and crossgate's log level " + _DEFAULT,
    )
    app = serve.add_argument_group("application")
    app.add_argument(
        "--interface",
        choices=("auto", "wsgi", "asgi"),
        default="auto",
        help="what APP is; auto tells by whether it is async " + _DEFAULT,
    )
    app.add_argument(
        "--app-dir", default=".", metavar="DIR", help="look for MODULE in DIR first " + _DEFAULT
    )
    adapter = serve.add_argument_group(
        "adapter", "Options of the adapter crossgate wraps APP in; refused when there is none."
    )
    adapter.add_argument(
        "--threads", type=_positive, metavar="N", help="WSGIToASGI: thread-pool size [default: 32]"
    )
    adapter.add_argument(
        "--queue-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="WSGIToASGI: seconds a request waits for a thread, then 503 [default: no limit]",
    )
    adapter.add_argument(
        "--request-body",
        choices=("stream", "spool"),
        help="WSGIToASGI: stream the body to the app, or read it all first [default: stream]",
    )
    adapter.add_argument(
        "--mode",
        choices=("auto", "inline", "shared"),
        help="ASGIToWSGI: where the ASGI app's event loop runs [default: auto]",
    )
    adapter.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        help="ASGIToWSGI: run the ASGI app's lifespan [default: auto]",
    )
    adapter.add_argument(
        "--max-body-size",
        type=_size,
        metavar="BYTES",
        help="both: answer 413 to request bodies larger than this [default: no limit]",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crossgate``; a mistake prints one line, ``crossgate: error: ...``, and returns 2."""
    arguments = _parser().parse_args(argv)
    try:
        run(**vars(arguments))
    except CommandLineError as error:
        print(f"crossgate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
