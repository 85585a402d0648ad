"""crossgate middleware around the adapters, as the server tests serve it.

``asgi_side``: the Flask test app through WSGIToASGI, behind `GZip` and `BodyLimit`, for the
ASGI servers. ``wsgi_side``: the FastAPI test app through ASGIToWSGI, behind `WSGIGZip` and
`WSGIBodyLimit`, for the WSGI servers. The limit is small so that a test can cross it.
"""

from __future__ import annotations

from crossgate import BodyLimit, GZip, WSGIBodyLimit, WSGIGZip, WSGIToASGI
from tests.servers import fastapi_app
from tests.servers.flask_app import app as flask_app

MAX_BODY_SIZE = 4096

# minimum_size=0: even the short hello is compressed when the client accepts gzip.
asgi_side = GZip(BodyLimit(WSGIToASGI(flask_app), max_body_size=MAX_BODY_SIZE), minimum_size=0)

wsgi_side = WSGIGZip(
    WSGIBodyLimit(fastapi_app.application, max_body_size=MAX_BODY_SIZE), minimum_size=0
)
