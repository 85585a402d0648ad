"""ASGI entry point for the Flask test app: ``uvicorn tests.servers.flask_asgi:application``."""

from __future__ import annotations

from crossgate import WSGIToASGI
from tests.servers._rendezvous import server_log
from tests.servers.flask_app import app


def _startup() -> None:
    # The server tests look for this line: it shows the server ran the lifespan protocol and
    # the adapter ran its hooks before serving.
    server_log("crossgate-startup-ran app=flask")


application = WSGIToASGI(app, on_startup=[_startup])
