"""Hello world as WSGI apps for gunicorn: ``gunicorn bench.a2w_server_apps:<name>``.

``native`` is the WSGI app itself; the others serve its ASGI twin. Each gunicorn worker imports
this module after the fork (no ``--preload``), so a2wsgi's loop thread, made when its middleware
is built, exists in every worker.
"""

from __future__ import annotations

from typing import Any, cast
from wsgiref.types import WSGIApplication

from a2wsgi import ASGIMiddleware

from bench.a2w_apps import with_lifespan
from bench.apps import hello_asgi, hello_wsgi
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI

__all__ = ["a2wsgi", "crossgate", "crossgate_shared", "native"]

native: WSGIApplication = hello_wsgi
# bench.harness types ASGI messages as dict, crossgate as MutableMapping: the same at runtime.
crossgate = ASGIToWSGI(cast(Any, with_lifespan(hello_asgi)))
crossgate_shared = ASGIToWSGI(cast(Any, with_lifespan(hello_asgi)), mode="shared")
a2wsgi = cast(WSGIApplication, ASGIMiddleware(cast(Any, hello_asgi)))
