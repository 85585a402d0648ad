"""The upload app two ways, for ``uvicorn bench.storm_apps:<name>`` in the upload-storm section.

Both wrap `bench.apps.upload_wsgi`, which reads the body in 64 KiB pieces and keeps nothing, so
any memory the storm leaves behind belongs to the adapter or the server.
"""

from __future__ import annotations

from typing import Any, cast

from a2wsgi import WSGIMiddleware

from bench.apps import upload_wsgi
from bench.harness import ASGIApp
from crossgate import WSGIToASGI

__all__ = ["a2wsgi", "crossgate", "crossgate_10"]

crossgate: ASGIApp = cast(ASGIApp, WSGIToASGI(upload_wsgi))
# a2wsgi runs 10 threads by default, crossgate 32: the like-for-like comparison.
crossgate_10: ASGIApp = cast(ASGIApp, WSGIToASGI(upload_wsgi, workers=10))
a2wsgi: ASGIApp = cast(ASGIApp, WSGIMiddleware(cast(Any, upload_wsgi)))
