"""One WSGI app object given to several routers gets one `WSGIToASGI`, so one thread pool.

A Flask app mounted at ``/legacy`` and also the `Fallback` of the whole site used to be wrapped
once per router: two pools of 32 threads for one app (65 threads under load).
"""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Iterable

import pytest
from flask import Flask

from crossgate import WSGIToASGI
from crossgate.routing import Fallback, Mount, PathRouter, ProtocolRouter
from crossgate.testing import call_http, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.routing.conftest import Recorder, run


def _flask() -> Flask:
    app = Flask(__name__)

    @app.route("/<path:rest>")
    def show(rest: str) -> str:
        return f"flask {rest} on {threading.current_thread().name}"

    return app


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("crossgate-wsgi")}


def _adapters(*routers: object) -> list[WSGIToASGI]:
    found: list[WSGIToASGI] = []
    pending = list(routers)
    while pending:
        router = pending.pop()
        for app in getattr(router, "apps", ()):
            if isinstance(app, WSGIToASGI):
                found.append(app)
            else:
                pending.append(app)
    return found


def test_one_app_in_a_mount_and_a_fallback_gets_one_pool(thread_leak_check: None) -> None:
    legacy = _flask()
    # One worker per pool: one pool can never have more than one thread, two pools have two.
    options = {"workers": 1}
    paths = PathRouter(
        [Mount("/legacy", legacy)], default=Recorder("new", status=404), wsgi_options=options
    )
    site = Fallback(paths, legacy, wsgi_options=options)
    before = _pool_threads()
    try:
        mounted = run(lambda: call_http(site, http_scope(path="/legacy/a")))
        fallen = run(lambda: call_http(site, http_scope(path="/b")))
        threads = _pool_threads() - before
        adapters = _adapters(site)
    finally:
        site.close()

    assert mounted.status == fallen.status == 200
    assert mounted.body.startswith(b"flask a")
    assert fallen.body.startswith(b"flask b")
    # One adapter object behind both routers, and one pool: one worker thread served both
    # requests (a second pool would have started a thread of its own).
    assert len(threads) == 1
    assert len(adapters) == 2
    assert adapters[0] is adapters[1]


def test_twice_in_one_router_was_already_one_sub_app() -> None:
    legacy = _flask()
    router = ProtocolRouter({"http": legacy, "websocket": legacy})
    try:
        assert len(router.apps) == 1
    finally:
        router.close()


def test_different_wsgi_options_make_two_adapters_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def legacy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b""]

    inner = PathRouter([Mount("/a", legacy)], wsgi_options={"workers": 2})
    with caplog.at_level(logging.WARNING, logger="crossgate.routing"):
        outer = Fallback(inner, legacy, wsgi_options={"workers": 4})
    try:
        first, second = _adapters(outer)
    finally:
        outer.close()

    assert first is not second
    assert "different wsgi_options" in caplog.text


def test_the_shared_adapter_goes_with_the_last_router_using_it() -> None:
    legacy = _flask()
    first = PathRouter([Mount("/a", legacy)])
    adapter = weakref.ref(_adapters(first)[0])
    second = PathRouter([Mount("/b", legacy)])
    assert _adapters(second)[0] is adapter()
    del first
    gc.collect()
    assert adapter() is not None  # the second router still uses it
    del second
    gc.collect()
    assert adapter() is None
    # A new router makes a new one.
    third = PathRouter([Mount("/c", legacy)])
    assert isinstance(_adapters(third)[0], WSGIToASGI)
