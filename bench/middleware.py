"""Middleware overhead: the time each crossgate middleware adds to one request.

Every middleware is measured against the bare app it wraps, in the same process and the same
run: ``added = per-request time with the middleware - per-request time of the bare app``. The
ASGI classes wrap a bare ASGI app called in-process (no server, no event-loop round trip); the
WSGI siblings wrap a bare WSGI app called directly, its iterable iterated and closed as a
server would. Where a well-known peer does the same job (uvicorn's ProxyHeadersMiddleware,
Starlette's TrustedHostMiddleware and GZipMiddleware, werkzeug's ProxyFix), it is measured in
the same child process for comparison.

``python -m bench.middleware [--quick]`` prints the table; ``--child CASE`` measures one case
and prints one line of JSON (what `section` runs in a fresh process per case).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from bench.report import Row, Table, text_table
from bench.subproc import cell, emit, progress, run_child

__all__ = ["CASE_KEYS", "measure", "section"]

TARGET_US = 10.0
HELLO = b"Hello, world!"
# A page that is worth compressing, for the row that shows the compression work itself.
PAGE = b"<li class='item'>The quick brown fox jumps over the lazy dog.</li>\n" * 32  # 2 KiB
# Bounds every timing loop in calls as well as in seconds.
MAX_CALLS_PER_BATCH = 2_000_000
GRACE = 20.0

# One request as a server hands it over; each case adds the headers its middleware reads.
BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
]

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


# --- the bare apps ------------------------------------------------------------------------------


def _asgi_app(body: bytes) -> ASGIApp:
    """Reads its request (one ``receive``), answers ``body``: the work every case shares.

    Fresh messages every call, as a real app sends: a middleware may change the messages it is
    given (Starlette's GZipMiddleware appends to the headers list), and a shared one would then
    carry that change into every later call, of every variant.
    """
    headers = (
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return app


def _wsgi_app(body: bytes) -> WSGIApp:
    headers = (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))))

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        if length:
            environ["wsgi.input"].read(int(length))
        start_response("200 OK", list(headers))  # a fresh list, as for the ASGI twin
        return [body]

    return app


# --- one request, many times --------------------------------------------------------------------


class _Connection:
    """A minimal in-process server side of one ASGI request: one body message, a status."""

    __slots__ = ("body", "sent", "status")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.sent = 0

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.sent += len(message.get("body", b""))


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    def scope(self) -> dict[str, Any]:
        headers = [*BASE_HEADERS, *self.headers]
        if self.body:
            headers.append((b"content-length", str(len(self.body)).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": "/items",
            "raw_path": b"/items",
            "query_string": b"page=2",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
            "state": {},
        }

    def environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": "/items",
            "QUERY_STRING": "page=2",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        for name, value in [*BASE_HEADERS, *self.headers]:
            key = "HTTP_" + name.decode().upper().replace("-", "_")
            environ[key] = value.decode("latin-1")
        if self.body:
            environ["CONTENT_LENGTH"] = str(len(self.body))
        return environ


class BenchError(Exception):
    """A middleware answered something else than the bare app would: the figure would lie."""


async def _time_asgi(app: ASGIApp, request: Request, calls: int) -> float:
    """Seconds per request over ``calls`` requests (each with a fresh scope, as from a server)."""
    scope = request.scope()
    body = request.body
    started = time.perf_counter()
    for _ in range(calls):
        connection = _Connection(body)
        await app({**scope, "headers": list(scope["headers"])}, connection.receive, connection.send)
    return (time.perf_counter() - started) / calls


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _discard


def _discard(data: bytes) -> None:
    return None


def _time_wsgi(app: WSGIApp, request: Request, calls: int) -> float:
    environ = request.environ()
    body = request.body
    started = time.perf_counter()
    for _ in range(calls):
        fresh = {**environ, "wsgi.input": io.BytesIO(body)}
        result = app(fresh, _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / calls


def _check_asgi(app: ASGIApp, request: Request) -> None:
    async def once() -> _Connection:
        connection = _Connection(request.body)
        await app(request.scope(), connection.receive, connection.send)
        return connection

    connection = asyncio.run(once())
    if connection.status != 200 or not connection.sent:
        raise BenchError(f"answered {connection.status} with {connection.sent} bytes")


def _check_wsgi(app: WSGIApp, request: Request) -> None:
    seen: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append(status)
        return _discard

    environ = {**request.environ(), "wsgi.input": io.BytesIO(request.body)}
    result = app(environ, start_response)
    sent = sum(len(chunk) for chunk in result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    if not seen or not seen[-1].startswith("200") or not sent:
        raise BenchError(f"answered {seen[-1:] or 'nothing'} with {sent} bytes")


# --- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    side: str  # "asgi" or "wsgi"
    crossgate: Callable[[Any], Any]
    request: Request = field(default_factory=Request)
    peer: Callable[[Any], Any] | None = None
    body: bytes = HELLO
    target: bool = True  # False: the row shows work done, not overhead


def _access_logger() -> logging.Logger:
    """A logger that takes the access lines at INFO and drops them: formatting is measured,
    a handler's I/O is not (that is the deployment's choice)."""
    logger = logging.getLogger("bench.middleware.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def _cases() -> dict[str, Case]:
    # Imported here: a child measuring one case loads what that case needs.
    from crossgate.middleware.body_limit import BodyLimit, WSGIBodyLimit
    from crossgate.middleware.gzip import GZip, WSGIGZip
    from crossgate.middleware.origin_check import OriginCheck, WSGIOriginCheck
    from crossgate.middleware.proxy_headers import ProxyHeaders, WSGIProxyHeaders
    from crossgate.middleware.request_id import RequestID, WSGIRequestID
    from crossgate.middleware.trusted_hosts import TrustedHosts, WSGITrustedHosts

    def uvicorn_proxy(app: Any) -> Any:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        return ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")

    def werkzeug_proxy(app: Any) -> Any:
        from werkzeug.middleware.proxy_fix import ProxyFix

        return ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def starlette_hosts(app: Any) -> Any:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        return TrustedHostMiddleware(app, allowed_hosts=["example.com", "*.example.com"])

    def starlette_gzip(app: Any) -> Any:
        from starlette.middleware.gzip import GZipMiddleware

        return GZipMiddleware(app, minimum_size=500)

    forwarded = Request(
        headers=(
            (b"x-forwarded-for", b"203.0.113.7"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"example.com"),
        )
    )
    post = Request("POST", headers=((b"origin", b"https://example.com"),), body=b"x" * 64)
    gzip_get = Request(headers=((b"accept-encoding", b"gzip, deflate, br"),))
    hosts = ["example.com", "*.example.com"]
    origins = ["https://example.com"]
    access = _access_logger()
    cases: dict[str, Case] = {}
    for side, (proxy, hosted, origin, limit, gzip, rid) in {
        "asgi": (ProxyHeaders, TrustedHosts, OriginCheck, BodyLimit, GZip, RequestID),
        "wsgi": (
            WSGIProxyHeaders,
            WSGITrustedHosts,
            WSGIOriginCheck,
            WSGIBodyLimit,
            WSGIGZip,
            WSGIRequestID,
        ),
    }.items():
        prefix = "" if side == "asgi" else "WSGI"
        asgi = side == "asgi"

        def make(factory: Any, **options: Any) -> Callable[[Any], Any]:
            return lambda app: factory(app, **options)

        cases[f"{side}-proxy"] = Case(
            f"{prefix}ProxyHeaders (X-Forwarded-For/-Proto/-Host)",
            side,
            make(proxy, trusted=["127.0.0.1"], mode="x-forwarded"),
            forwarded,
            uvicorn_proxy if asgi else werkzeug_proxy,
        )
        cases[f"{side}-hosts"] = Case(
            f"{prefix}TrustedHosts",
            side,
            make(hosted, allowed_hosts=hosts),
            peer=starlette_hosts if asgi else None,
        )
        cases[f"{side}-origin"] = Case(
            f"{prefix}OriginCheck (POST with Origin, http checked)",
            side,
            make(origin, allowed_origins=origins, protocols=("http", "websocket")),
            post,
        )
        cases[f"{side}-limit"] = Case(
            f"{prefix}BodyLimit (POST, 64-byte body)",
            side,
            make(limit, max_body_size=1024 * 1024),
            post,
        )
        cases[f"{side}-gzip"] = Case(
            f"{prefix}GZip (13-byte body: negotiated, not compressed)",
            side,
            make(gzip),
            gzip_get,
            starlette_gzip if asgi else None,
        )
        cases[f"{side}-gzip-2k"] = Case(
            f"{prefix}GZip compressing a 2 KiB page (work, not overhead)",
            side,
            make(gzip),
            gzip_get,
            starlette_gzip if asgi else None,
            body=PAGE,
            target=False,
        )
        cases[f"{side}-rid"] = Case(
            f"{prefix}RequestID, access line written (NullHandler)",
            side,
            make(rid, logger=access),
        )
        cases[f"{side}-rid-nolog"] = Case(
            f"{prefix}RequestID, access_log=False", side, make(rid, access_log=False)
        )
    return cases


CASE_KEYS = [
    f"{side}-{name}"
    for side in ("asgi", "wsgi")
    for name in ("proxy", "hosts", "origin", "limit", "gzip", "gzip-2k", "rid", "rid-nolog")
]


# --- the child: one case, bare and wrapped in turns ---------------------------------------------


def _measure_here(key: str, seconds: float, rounds: int) -> dict[str, Any]:
    case = _cases()[key]
    variants: dict[str, Any]
    if case.side == "asgi":
        bare: Any = _asgi_app(case.body)
        check: Callable[[Any, Request], None] = _check_asgi
    else:
        bare = _wsgi_app(case.body)
        check = _check_wsgi
    variants = {"bare": bare, "crossgate": case.crossgate(bare)}
    if case.peer is not None:
        variants["peer"] = case.peer(bare)
    try:
        for app in variants.values():
            check(app, case.request)
    except BenchError as exc:
        return {"error": f"error: {exc}"}

    def timed(app: Any, calls: int) -> float:
        if case.side == "asgi":
            return asyncio.run(_time_asgi(cast(ASGIApp, app), case.request, calls))
        return _time_wsgi(cast(WSGIApp, app), case.request, calls)

    # Size the batches so that every variant gets about the same share of the time box.
    probe = max(timed(app, 200) for app in variants.values())
    budget = seconds / rounds / len(variants)
    calls = max(100, min(MAX_CALLS_PER_BATCH, int(budget / probe)))
    best = {name: float("inf") for name in variants}
    names = list(variants)
    for index in range(rounds):
        # Rotate the order so that no variant always runs first (a warmer or colder cache).
        for name in names[index % len(names) :] + names[: index % len(names)]:
            best[name] = min(best[name], timed(variants[name], calls))
    result: dict[str, Any] = {
        "bare": best["bare"] * 1e6,
        "crossgate": (best["crossgate"] - best["bare"]) * 1e6,
        "calls": calls,
    }
    if "peer" in best:
        result["peer"] = (best["peer"] - best["bare"]) * 1e6
    return result


def measure(key: str, seconds: float, rounds: int) -> dict[str, Any]:
    """Measure case ``key`` in a fresh child process."""
    args = ["--child", key, "--seconds", str(seconds), "--rounds", str(rounds)]
    return run_child("bench.middleware", args, timeout=seconds * 2 + GRACE)


@dataclass(frozen=True)
class Settings:
    seconds: float  # time box per case (bare, crossgate and peer together)
    rounds: int


FULL = Settings(seconds=3.0, rounds=15)
QUICK = Settings(seconds=0.4, rounds=5)

COLUMNS = ("bare app", "crossgate", "peer")
RATIOS = ("peer",)
NOTES = [
    "'bare app' is the per-request time of the app alone; 'crossgate' and 'peer' are the time "
    "the middleware adds to it, measured against that bare app in the same child process.",
    "Each figure is the fastest of the rounds (bare and wrapped alternate in rotating order), "
    "so background noise on the machine inflates neither side.",
    "Peers: uvicorn ProxyHeadersMiddleware and werkzeug ProxyFix (X-Forwarded-For/-Proto/-Host), "
    "Starlette TrustedHostMiddleware and GZipMiddleware; no common peer exists for the others.",
    "ASGI apps are called in-process without a server; WSGI apps are called directly, their "
    "iterable iterated and closed. The 2 KiB rows include the compression itself (zlib level "
    "6 / brotli quality 4), which is work the client asked for, not overhead: no target.",
]


def section(quick: bool) -> Table:
    """The overhead of each middleware, one fresh child process per case."""
    settings = QUICK if quick else FULL
    progress("== middleware overhead")
    rows: list[Row] = []
    labels = _labels()
    for key in CASE_KEYS:
        result = measure(key, settings.seconds, settings.rounds)
        row = Row(labels[key][0], "us")
        if "error" in result:
            for column in COLUMNS:
                row.cells[column] = str(result["error"])
            progress(f"  {key:<16} {result['error']}")
        else:
            row.cells["bare app"] = cell(result, "bare")
            row.cells["crossgate"] = cell(result, "crossgate")
            if "peer" in result:
                row.cells["peer"] = cell(result, "peer")
            progress(
                f"  {key:<16} bare {result['bare']:.2f} us, crossgate +{result['crossgate']:.2f} us"
                + (f", peer +{result['peer']:.2f} us" if "peer" in result else "")
            )
        if labels[key][1]:
            ours = row.number("crossgate")
            row.target = f"<= {TARGET_US:g} us added"
            row.met = None if ours is None else ours <= TARGET_US
        rows.append(row)
    method = (
        f"{settings.seconds:g} s per case in {settings.rounds} rounds, "
        "fresh process per case; hello world (13 bytes) unless the row says otherwise."
    )
    return Table("Middleware: time added per request", COLUMNS, RATIOS, rows, [method, *NOTES])


def _labels() -> dict[str, tuple[str, bool]]:
    """Case key -> (row label, has a target); built in this process only for the labels."""
    return {key: (case.label, case.target) for key, case in _cases().items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.middleware", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every measurement")
    parser.add_argument("--child", choices=CASE_KEYS, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=FULL.seconds, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=FULL.rounds, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        emit(_measure_here(args.child, args.seconds, args.rounds), hard_exit=False)
        return
    print(text_table(section(args.quick)))


if __name__ == "__main__":
    main()
