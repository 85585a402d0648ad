"""``validator(ASGIToWSGI(app))`` served by ``wsgiref.simple_server`` on a real socket.

The server listens on 127.0.0.1 port 0 and runs in a thread of the test process; every wait is
bounded, and the server is shut down (and its socket closed) after each test.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.validate import validator

import pytest

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import TEXT, echo, hello
from tests.asgi_to_wsgi.conftest import Mode, wait_until

TIMEOUT = 10.0


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Served:
    def __init__(self, adapter: ASGIToWSGI) -> None:
        self.adapter = adapter
        self.server: WSGIServer = make_server(
            "127.0.0.1", 0, validator(adapter), handler_class=QuietHandler
        )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(TIMEOUT)
        self.server.server_close()
        self.adapter.shutdown()


@pytest.fixture
def serve(thread_leak_check: None, mode: Mode) -> Iterator[Any]:
    started: list[Served] = []

    def start(app: Any, **options: Any) -> Served:
        served = Served(ASGIToWSGI(app, mode=mode, **options))
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def _request(
    served: Served, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    connection = served.connection()
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_get_and_post(serve: Any) -> None:
    served = serve(echo)
    assert _request(served, "POST", "/", b"x" * 300_000) == (200, b"x" * 300_000)
    served_hello = serve(hello)
    assert _request(served_hello, "GET", "/") == (200, b"hello")


def test_errors_are_500s_and_the_server_keeps_serving(serve: Any) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"ok"})

    served = serve(app)

    assert _request(served, "GET", "/boom")[0] == 500
    assert _request(served, "GET", "/") == (200, b"ok")


def test_streamed_response_arrives_while_the_app_still_produces(serve: Any) -> None:
    head_received = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"head\n", "more_body": True})
        # The tail waits for the client to have the head: a buffered response would only
        # reach the client once this gave up, and say so.
        released = await asyncio.to_thread(head_received.wait, TIMEOUT)
        await send({"type": "http.response.body", "body": b"tail\n" if released else b"timeout\n"})

    served = serve(app)
    connection = served.connection()
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.readline() == b"head\n"
        head_received.set()
        assert response.read() == b"tail\n"
    finally:
        connection.close()


def test_client_leaving_mid_stream_stops_the_app(serve: Any) -> None:
    stopped: list[str] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            stopped.append(type(exc).__name__)

    served = serve(app)
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
    try:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"tick" not in received:
            data = sock.recv(4096)
            assert data, "the server closed before the first tick"
            received += data
    finally:
        sock.close()

    # wsgiref's write fails once the client is gone, and it calls close() on the iterable.
    assert wait_until(lambda: bool(stopped), TIMEOUT)
    assert stopped == ["ClientDisconnected"]
