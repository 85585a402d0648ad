"""pytest plugin: serve every app a Starlette or Flask test builds through a WSGI<->ASGI round trip.

Loaded into Starlette's or Flask's own test suite with ``-p conformance.plugin --round-trip=MODE``
(`conformance.run` does it). The suites run unchanged, against the installed packages; only the
app under test is wrapped, where the test hands it to a client:

* Starlette: ``TestClient(app)`` (and ``httpx.ASGITransport(app=app)``) get an ASGI app that sends
  ``http`` scopes through ``WSGIToASGI(ASGIToWSGI(app))``. ``websocket`` and ``lifespan`` scopes
  go straight to ``app``: WSGI carries neither, so the inner ``ASGIToWSGI`` runs no lifespan.
* Flask: ``Flask.__call__`` (what werkzeug's test client and every WSGI server call) sends the
  request through ``ASGIToWSGI(WSGIToASGI(app.wsgi_app))``.

Modes: ``none`` (the suite as its authors run it), ``inline`` and ``shared`` (the two
``ASGIToWSGI`` modes), ``a2wsgi`` (the peer's ``ASGIMiddleware`` and ``WSGIMiddleware`` in the same
places, for comparison). Adapters a test used are shut down after it, so no loop or thread
outlives its test. Each test's outcome goes to the JSON file ``--round-trip-report`` names.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Generator, Iterable, MutableMapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.types import (
    ASGIApp,
    ASGIReceive,
    ASGISend,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

MODES = ("none", "inline", "shared", "a2wsgi")


class _Closable(Protocol):
    def close(self) -> None: ...


# The round trips that served a request in the current test, closed after it. A client made at
# import time and used by several tests builds its adapters again on its next request.
_used: dict[int, _Closable] = {}
_mode = "none"


class _A2wsgiLoop:
    """The loop thread a2wsgi's ``ASGIMiddleware`` runs apps on, which we can stop again.

    a2wsgi's default makes a loop and a thread per middleware and never stops them.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="a2wsgi-loop", daemon=True).start()

    def stop(self) -> None:
        # Stopped, never closed, and kept: a2wsgi may leave tasks on it (an abandoned response),
        # and a closed or collected loop would turn them into warnings in a later test.
        self.loop.call_soon_threadsafe(self.loop.stop)
        _stopped_loops.append(self)


_stopped_loops: list[_A2wsgiLoop] = []


def _as_asgi3(app: Any) -> ASGIApp:
    """``app`` as an ASGI 3 callable: Starlette's TestClient also accepts ASGI 2 apps."""
    if inspect.isclass(app):
        asgi3 = hasattr(app, "__await__")
    else:
        call = app if inspect.isfunction(app) else getattr(app, "__call__", None)  # noqa: B004
        asgi3 = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app)
    if asgi3:
        return app  # type: ignore[no-any-return]

    async def asgi2(scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        await app(scope)(receive, send)

    return asgi2


class AsgiRoundTrip:
    """An ASGI app: ``http`` through WSGI and back, every other scope straight to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = _as_asgi3(app)
        self.http: ASGIApp | None = None
        self.closers: list[Callable[[], None]] = []

    def _build(self) -> ASGIApp:
        if _mode == "a2wsgi":
            import a2wsgi

            loop = _A2wsgiLoop()
            wsgi = a2wsgi.ASGIMiddleware(self.app, loop=loop.loop)  # type: ignore[arg-type]
            peer = a2wsgi.WSGIMiddleware(wsgi)
            self.closers = [loop.stop, lambda: peer.executor.shutdown(wait=False)]
            return peer  # type: ignore[return-value]
        # No lifespan inside: it goes straight to the app, as WSGI cannot carry it.
        inner = ASGIToWSGI(self.app, mode=_mode, lifespan="off")  # type: ignore[arg-type]
        outer = WSGIToASGI(inner)
        # Without waiting for the pool: a test that timed out may have left its app running.
        self.closers = [inner.shutdown, lambda: outer.close(wait=False)]
        return outer

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.http is None:
            self.http = self._build()
        _used[id(self)] = self
        await self.http(scope, receive, send)

    def close(self) -> None:
        self.http = None
        closers, self.closers = self.closers, []
        for close in closers:
            close()


class WsgiRoundTrip:
    """A WSGI app: ``wsgi_app`` through ASGI and back."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self.call: WSGIApplication | None = None
        self.closers: list[Callable[[], None]] = []

    def _build(self) -> WSGIApplication:
        if _mode == "a2wsgi":
            import a2wsgi

            loop = _A2wsgiLoop()
            asgi = a2wsgi.WSGIMiddleware(self.wsgi_app)  # type: ignore[arg-type]
            self.closers = [loop.stop, lambda: asgi.executor.shutdown(wait=False)]
            return a2wsgi.ASGIMiddleware(asgi, loop=loop.loop)  # type: ignore[return-value]
        inner = WSGIToASGI(self.wsgi_app)
        outer = ASGIToWSGI(inner, mode=_mode)  # type: ignore[arg-type]
        self.closers = [outer.shutdown, lambda: inner.close(wait=False)]
        return outer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.call is None:
            self.call = self._build()
        _used[id(self)] = self
        return self.call(environ, start_response)

    def close(self) -> None:
        self.call = None
        closers, self.closers = self.closers, []
        for close in closers:
            close()


def _wrap_init(cls: type, wrap: Callable[[Any], Any]) -> None:
    """Make ``cls(app, ...)`` and ``cls(app=app, ...)`` receive ``wrap(app)`` instead."""
    original = cls.__init__  # type: ignore[misc]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "app" in kwargs:
            kwargs["app"] = wrap(kwargs["app"])
        elif args:
            args = (wrap(args[0]), *args[1:])
        original(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]


def _install_starlette() -> None:
    from starlette.testclient import TestClient

    _wrap_init(TestClient, AsgiRoundTrip)
    for client_module in ("httpx2", "httpx"):
        try:
            module = __import__(client_module)
        except ImportError:
            continue
        _wrap_init(module.ASGITransport, AsgiRoundTrip)


def _install_flask() -> None:
    from flask import Flask

    trips: dict[int, tuple[Flask, Any, WsgiRoundTrip]] = {}

    def __call__(self: Flask, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        # A test may replace app.wsgi_app (ProxyFix, a middleware) after the app served once.
        wsgi_app = self.wsgi_app
        known = trips.get(id(self))
        if known is None or known[1] != wsgi_app:
            known = trips[id(self)] = (self, wsgi_app, WsgiRoundTrip(wsgi_app))
        return known[2](environ, start_response)

    def forget() -> None:
        trips.clear()

    Flask.__call__ = __call__  # type: ignore[method-assign]
    _after_test.append(forget)


_after_test: list[Callable[[], None]] = []


# -- pytest hooks --------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("round-trip", "serve apps through a WSGI<->ASGI round trip")
    group.addoption("--round-trip", choices=MODES, default="none", help="which adapters")
    group.addoption("--round-trip-suite", choices=("starlette", "flask"), required=True)
    group.addoption("--round-trip-report", type=Path, help="write each test's outcome here")


def pytest_configure(config: pytest.Config) -> None:
    global _mode
    _mode = config.getoption("--round-trip")
    logging.getLogger("crossgate").addHandler(_SwallowedErrors())
    suite = config.getoption("--round-trip-suite")
    if suite == "flask":
        _flask_suite_on_pytest_9()
    if _mode == "none":
        return
    if suite == "starlette":
        _install_starlette()
    else:
        _install_flask()


def _flask_suite_on_pytest_9() -> None:
    """Put back ``_pytest.monkeypatch.notset``, which Flask 3.1.3's own suite imports.

    Flask's ``conftest.py`` and ``test_cli.py`` use that private pytest name, gone from pytest 9
    (which the dev extras pin). The shim is for their code only: nothing of ours reads it.
    """
    import _pytest.monkeypatch

    if not hasattr(_pytest.monkeypatch, "notset"):
        from _pytest.compat import NOTSET

        _pytest.monkeypatch.notset = NOTSET  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The asyncio backend only: WSGIToASGI runs on asyncio (a trio loop has no asyncio loop for
    # its worker threads to call back into), so trio's copies of the anyio tests are left out.
    trio = [item for item in items if _backend(item) == "trio"]
    if trio:
        items[:] = [item for item in items if _backend(item) != "trio"]
        config.hook.pytest_deselected(items=trio)


def _backend(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("anyio_backend")


_current: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _current.append(item.nodeid)
    try:
        return (yield)
    finally:
        _current.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        yield
    finally:
        used = list(_used.values())
        _used.clear()
        for hook in _after_test:
            hook()
        for trip in used:
            trip.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        _messages.setdefault(report.nodeid, _summary(report))
    elif report.skipped:
        _outcomes.setdefault(report.nodeid, "xfailed" if hasattr(report, "wasxfail") else "skipped")
    elif report.when == "call":
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))
    path = session.config.getoption("--round-trip-report")
    if path is None:
        return
    report = {
        "mode": _mode,
        "outcomes": _outcomes,
        "messages": _messages,
        "swallowed": sorted(_swallowed),
    }
    path.write_text(json.dumps(report, indent=1, sort_keys=True))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # An app that hung for good (the timeout failed its test) still holds a worker thread, and
    # interpreter exit would join it for ever (concurrent.futures joins its workers, daemon or
    # not). The report is written: leave without joining anything.
    main = threading.main_thread()
    stuck = [t for t in threading.enumerate() if t is not main and t.is_alive()]
    if stuck:
        sys.stdout.flush()
        sys.stderr.write(
            f"round trip: {len(stuck)} thread(s) left after the session "
            f"({', '.join(sorted({t.name for t in stuck}))}); exiting without joining them\n"
        )
        sys.stderr.flush()
        os._exit(_exit_status[-1] if _exit_status else 1)


class _SwallowedErrors(logging.Handler):
    """Notes the tests during which crossgate logged an app's exception (and answered 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and _current:
            _swallowed.add(_current[-1])


def _summary(report: pytest.TestReport) -> str:
    """The failure in one line: the last ``E`` line of the traceback pytest printed."""
    lines = report.longreprtext.strip().splitlines() or ["?"]
    failures = [line[1:].strip() for line in lines if line[:2] == "E "]
    return f"{report.when}: {(failures or lines)[-1]}"[:300]


_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}
_swallowed: set[str] = set()
_exit_status: list[int] = []
