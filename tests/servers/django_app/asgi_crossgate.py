"""ASGI entry point: the Django WSGI application served through crossgate.

``uvicorn tests.servers.django_app.asgi_crossgate:application``
"""

from __future__ import annotations

from crossgate import WSGIToASGI
from tests.servers._rendezvous import server_log
from tests.servers.django_app.wsgi import application as wsgi_application


def _startup() -> None:
    # Proves the server ran lifespan and the adapter its hooks (the tests read the log).
    server_log("crossgate-startup-ran app=django")


application = WSGIToASGI(wsgi_application, on_startup=[_startup])
