"""The four contenders, built the same way: ``(ASGI app, close)`` for a WSGI app and its twin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from wsgiref.types import WSGIApplication

from bench.harness import ASGIApp

__all__ = ["ADAPTERS", "build"]

ADAPTERS = ("native", "crossgate", "a2wsgi", "asgiref")


def _nothing() -> None:
    return None


def build(
    name: str, wsgi_app: WSGIApplication, native_app: ASGIApp
) -> tuple[ASGIApp, Callable[[], None]]:
    """Wrap ``wsgi_app`` with adapter ``name`` (``native`` answers with ``native_app``).

    Imports are deferred so that a child process measuring one adapter loads only that one.
    """
    if name == "native":
        return native_app, _nothing
    if name == "crossgate":
        from crossgate import WSGIToASGI

        adapter = WSGIToASGI(wsgi_app)
        return cast(ASGIApp, adapter), adapter.close
    if name == "a2wsgi":
        from a2wsgi import WSGIMiddleware

        middleware = WSGIMiddleware(cast(Any, wsgi_app))
        # a2wsgi's executor is created in __init__; shut it down like crossgate's pool.
        return cast(ASGIApp, middleware), middleware.executor.shutdown
    if name == "asgiref":
        from asgiref.wsgi import WsgiToAsgi

        # asgiref's constructor is unannotated; asgiref has no pool to close: every request
        # runs on its one sync thread.
        make = cast(Callable[[WSGIApplication], ASGIApp], WsgiToAsgi)
        return make(wsgi_app), _nothing
    raise ValueError(f"unknown adapter {name!r}; pick one of {', '.join(ADAPTERS)}")
