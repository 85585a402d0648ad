"""Apps that fail, break the spec, or poll, for the server tests of ``test_failures.py``.

``wsgi_application`` (WSGIToASGI, for uvicorn) and ``asgi_application`` (ASGIToWSGI, for
gunicorn) each answer ``/`` with 200, so a test can check the server still serves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qs
from wsgiref.validate import validator

from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.servers._rendezvous import server_log

TEXT = [("Content-Type", "text/plain")]

# A long poll waits this many times (POLL_WAIT s each) at most: 20 s, far beyond any test's
# wait, so a poll that ends by itself and one closed because its client left are told apart.
POLL_WAITS = 400
POLL_WAIT = 0.05


class LongPoll:
    """A long poll that yields empty chunks while it waits for news that never come."""

    def __init__(self, token: str, gone: threading.Event) -> None:
        self.token = token
        self.gone = gone
        self.waits = 0

    def __iter__(self) -> Iterator[bytes]:
        server_log(f"poll-started token={self.token}")
        while self.waits < POLL_WAITS:
            self.waits += 1
            time.sleep(POLL_WAIT)
            yield b""

    def close(self) -> None:
        # PEP 3333: the server calls close(); the log line is the test's proof.
        thread = threading.current_thread().name
        gone = self.gone.is_set()
        server_log(f"poll-closed token={self.token} waits={self.waits} gone={gone} thread={thread}")


def _wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    token = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
    if path == "/raise":
        raise RuntimeError(f"wsgi-boom token={token}")
    if path == "/str":
        start_response("200 OK", TEXT)
        return iter(["a str, not bytes"])  # type: ignore[return-value]  # the bug under test
    if path == "/poll":
        start_response("200 OK", TEXT)
        return LongPoll(token, environ["crossgate.disconnected"])
    start_response("200 OK", TEXT)
    return [b"hello from wsgi"]


def _validated(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    # The str route is served unvalidated: the validator would stop it with an AssertionError
    # before the adapter could show how it handles it.
    if environ["PATH_INFO"] == "/str":
        return _wsgi(environ, start_response)
    return validated(environ, start_response)


validated = validator(_wsgi)
wsgi_application = WSGIToASGI(_validated)


async def _asgi(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    token = parse_qs(scope["query_string"].decode()).get("token", [""])[0]
    if scope["path"] == "/raise":
        raise RuntimeError(f"asgi-boom token={token}")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"hello from asgi"})


asgi_application = ASGIToWSGI(_asgi, lifespan="off")
