"""ASGIToWSGI responses: start_response timing, streaming, back-pressure, headers, pathsend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from crossgate.exceptions import AppProtocolError
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import TEXT, hello, respond
from tests.asgi_to_wsgi.conftest import MakeAdapter, Mode, make_environ, run_wsgi

# Bound on every rendezvous below: long enough for a loaded machine, and never asserted on.
WAIT = 5.0


async def _until(condition: Any, timeout: float = WAIT) -> bool:
    """Poll ``condition()`` from the app until it holds; False after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


def test_hello(make_adapter: MakeAdapter) -> None:
    result = run_wsgi(make_adapter(hello))

    assert result.status == "200 OK"
    assert result.headers == [("content-type", "text/plain")]
    assert result.body == b"hello"


def test_start_response_is_called_when_the_start_arrives(make_adapter: MakeAdapter) -> None:
    # The app sends its body only once the server has the status and headers: an adapter that
    # waited for the first body chunk before calling start_response would deadlock here until
    # the bound, and the body would say so.
    events: list[str] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 201, "headers": TEXT})
        seen = await _until(lambda: "start_response" in events)
        await send({"type": "http.response.body", "body": b"seen" if seen else b"not seen"})

    environ = make_environ()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        events.append("start_response")
        return None

    iterable = make_adapter(app)(environ, start_response)
    try:
        assert b"".join(iterable) == b"seen"
    finally:
        getattr(iterable, "close", lambda: None)()


def test_body_messages_stream_out_as_they_come(make_adapter: MakeAdapter) -> None:
    # Each chunk is sent only once the server has the previous one: a buffering adapter would
    # make the app give up waiting, and the body would end with "timeout".
    received: list[bytes] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for number in range(5):
            await send({"type": "http.response.body", "body": b"%d" % number, "more_body": True})
            if not await _until(lambda n=number: len(received) > n):
                await send({"type": "http.response.body", "body": b"timeout"})
                return
        await send({"type": "http.response.body", "body": b""})

    result = run_wsgi(make_adapter(app), on_chunk=received.append)

    assert result.chunks == [b"0", b"1", b"2", b"3", b"4"]


def test_app_never_runs_more_than_send_buffer_bytes_ahead(
    make_adapter: MakeAdapter, mode: Mode
) -> None:
    chunk = 4096
    produced = 0
    taken = 0
    worst_lead = 0

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        nonlocal produced, worst_lead
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for _ in range(200):
            worst_lead = max(worst_lead, produced - taken)
            produced += chunk
            await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": True})
        await send({"type": "http.response.body"})

    def slow_server(data: bytes) -> None:
        nonlocal taken
        taken += len(data)

    result = run_wsgi(make_adapter(app, send_buffer=32 * 1024), on_chunk=slow_server)

    assert result.body == b"x" * (200 * chunk)
    # send() waits once send_buffer bytes are queued; the chunk in hand may come on top. In
    # shared mode the app runs on while the server thread takes a batch, and this test counts
    # that batch only once the server has it: one more bufferful.
    bound = 32 * 1024 + chunk
    assert worst_lead <= (bound if mode == "inline" else 2 * bound)
    # And the small chunks were handed to the server in fewer, larger pieces.
    assert len(result.chunks) < 200


def test_hop_by_hop_headers_are_dropped(make_adapter: MakeAdapter) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        headers = [
            # Django sends names in their usual case through ASGI.
            (b"Content-Type", b"text/plain"),
            (b"Transfer-Encoding", b"chunked"),
            (b"connection", b"close"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        await respond(send, b"ok", headers=headers)

    # wsgiref's validator (and its server) refuse hop-by-hop headers from an app outright.
    result = run_wsgi(make_adapter(app))

    assert result.headers == [
        ("Content-Type", "text/plain"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]


def test_empty_body_and_several_final_forms(make_adapter: MakeAdapter) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body"})

    result = run_wsgi(make_adapter(app))

    assert result.status == "204 No Content"
    assert result.body == b""


def _file_app(path: Path) -> Any:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, several read blocks
    return path


def test_pathsend_goes_through_the_servers_file_wrapper(
    make_adapter: MakeAdapter, big_file: Path
) -> None:
    environ = make_environ(extra={"wsgi.file_wrapper": FileWrapper})

    # Unvalidated: the validator would hide the iterable's type behind its own wrapper.
    result = run_wsgi(make_adapter(_file_app(big_file)), environ, validate=False)

    # The server's own wrapper is the iterable, so a server such as gunicorn recognises it
    # and sends the file with sendfile().
    assert isinstance(result.iterable, FileWrapper)
    assert result.body == big_file.read_bytes()


def test_pathsend_without_a_file_wrapper_reads_the_file(
    make_adapter: MakeAdapter, big_file: Path
) -> None:
    environ = make_environ()
    environ.pop("wsgi.file_wrapper", None)

    result = run_wsgi(make_adapter(_file_app(big_file)), environ)

    assert result.body == big_file.read_bytes()
    assert len(result.chunks) > 1


def test_pathsend_file_wrapper_close_closes_the_file_and_the_request(
    make_adapter: MakeAdapter, big_file: Path
) -> None:
    after: list[str] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.pathsend", "path": str(big_file)})
        await asyncio.sleep(0)
        after.append("work after the response ran")

    environ = make_environ(extra={"wsgi.file_wrapper": FileWrapper})
    result = run_wsgi(make_adapter(app), environ, validate=False)

    assert isinstance(result.iterable, FileWrapper)
    assert result.iterable.filelike.closed
    # In inline mode, the app runs only while the server calls in: the wrapper's close() must
    # reach the adapter for the app's work after the response to run at all.
    deadline = time.monotonic() + WAIT
    while not after and time.monotonic() < deadline:
        time.sleep(0.01)
    assert after


def test_pathsend_keeps_the_servers_own_file_wrapper_close(
    make_adapter: MakeAdapter, big_file: Path
) -> None:
    closed: list[str] = []

    class ServerWrapper:
        """A server's wrapper whose close() does more than close the file."""

        def __init__(self, file: Any, block_size: int) -> None:
            self.file = file
            self.block_size = block_size

        def __iter__(self) -> Any:
            return iter(lambda: self.file.read(self.block_size), b"")

        def close(self) -> None:
            closed.append("server cleanup")
            self.file.close()

    environ = make_environ(extra={"wsgi.file_wrapper": ServerWrapper})
    result = run_wsgi(make_adapter(_file_app(big_file)), environ, validate=False)

    assert isinstance(result.iterable, ServerWrapper)
    assert result.body == big_file.read_bytes()
    assert closed == ["server cleanup"]  # chained, not replaced


def test_pathsend_of_a_missing_file_is_a_500(make_adapter: MakeAdapter, tmp_path: Path) -> None:
    app = _file_app(tmp_path / "missing")
    result = run_wsgi(make_adapter(app, raise_app_exceptions=False))

    assert result.code == 500
    assert len(result.start_calls) == 2
    assert result.start_calls[1][1] is not None  # replaced with exc_info (PEP 3333)


def test_pathsend_of_a_missing_file_reaches_the_wsgi_server(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    # Found when the iterable is made, in the application call: raised from it, with the
    # app's task settled first (the server will call no close()), which the leak checks see.
    result = run_wsgi(make_adapter(_file_app(tmp_path / "missing")), catch_call=True)

    error = result.call_error or result.error
    assert isinstance(error, AppProtocolError)
    assert "cannot open" in str(error)
