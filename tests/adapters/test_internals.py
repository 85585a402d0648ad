"""Edge paths of the adapter's building blocks, driven directly rather than through a request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from crossgate import ClientDisconnected, WSGIToASGI, wsgi_to_asgi
from crossgate.adapters._streams import FILE_BLOCK_SIZE, ErrorStream, FileWrapper
from crossgate.adapters.wsgi_to_asgi._exchange import WorkerExchange
from crossgate.adapters.wsgi_to_asgi._incoming_body import Disconnection
from crossgate.testing import call_http, call_websocket, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import MakeAdapter, run


def test_error_stream(caplog: pytest.LogCaptureFixture) -> None:
    stream = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="crossgate"):
        stream.writelines(["a\nb", "c\n"])
        stream.flush()
        stream.flush()  # nothing left: no empty record
    assert [r.getMessage() for r in caplog.records] == ["wsgi.errors: a", "wsgi.errors: bc"]
    with pytest.raises(TypeError, match="takes str"):
        stream.write(b"bytes")  # type: ignore[arg-type]


def test_file_wrapper_blocks_and_close(tmp_path: Path) -> None:
    class NoClose:
        def __init__(self) -> None:
            self.data = [b"x" * 10, b""]

        def read(self, size: int) -> bytes:
            assert size == FILE_BLOCK_SIZE
            return self.data.pop(0)

    wrapper = FileWrapper(NoClose(), 4096)
    assert list(wrapper) == [b"x" * 10]
    wrapper.close()  # a file-like without close() is fine


def test_wsgi_to_asgi_passes_options() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return []

    adapter = wsgi_to_asgi(app, workers=3, max_body_size=10)
    assert isinstance(adapter, WSGIToASGI)
    assert (adapter.workers, adapter.max_body_size) == (3, 10)


def test_push_after_the_loop_closed_means_the_client_is_gone() -> None:
    loop = asyncio.new_event_loop()
    exchange = WorkerExchange(loop, read_ahead=10, send_buffer=10)
    exchange._sender_waiter = loop.create_future()
    loop.close()
    with pytest.raises(ClientDisconnected):
        exchange.push(None, b"data")
    assert exchange.disconnected


def test_push_file_after_a_disconnect_raises() -> None:
    loop = asyncio.new_event_loop()
    try:
        exchange = WorkerExchange(loop, read_ahead=10, send_buffer=10)
        exchange.disconnected = True
        start: Any = {"type": "http.response.start", "status": 200, "headers": []}
        with pytest.raises(ClientDisconnected):
            exchange.push_file(start, {"type": "http.response.pathsend", "path": "/x"})
    finally:
        loop.close()


def test_respond_cancelled_while_idle_stops_the_worker_side() -> None:
    async def main() -> WorkerExchange:
        exchange = WorkerExchange(asyncio.get_running_loop(), read_ahead=10, send_buffer=10)

        async def send(message: Any) -> None:
            raise AssertionError("nothing is sent")

        task = asyncio.ensure_future(exchange.respond(send))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return exchange

    exchange = asyncio.run(main())
    assert exchange.disconnected
    assert Disconnection(exchange).is_set()


def test_websocket_that_never_connects(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise AssertionError("unreachable")

    adapter = make_adapter(app)

    async def main() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.disconnect", "code": 1001}

        async def send(message: Any) -> None:
            sent.append(message)

        await adapter(http_scope(type="websocket"), receive, send)
        return sent

    assert run(main) == []
    # And a normal refusal still works on the same adapter.
    assert run(lambda: call_websocket(adapter))[0]["type"] == "websocket.close"


def test_expired_spooled_request_closes_its_file(make_adapter: MakeAdapter) -> None:
    # filterwarnings=error turns an unclosed SpooledTemporaryFile (a ResourceWarning) into a
    # failure, so this also proves the file of the request that never ran is closed.
    entered = threading.Event()
    release = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    adapter = make_adapter(app, workers=1, queue_timeout=0.05, request_body="spool")

    async def main() -> list[int | None]:
        first = asyncio.ensure_future(call_http(adapter))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        second = await call_http(adapter, http_scope("POST"), body=b"spooled")
        release.set()
        return [(await first).status, second.status]

    assert run(main) == [200, 503]


def test_cancelled_queued_spooled_request_never_runs(make_adapter: MakeAdapter) -> None:
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    adapter = make_adapter(app, workers=1, request_body="spool")

    async def main() -> None:
        first = asyncio.ensure_future(call_http(adapter))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(call_http(adapter, http_scope("POST"), body=b"x"))
        await asyncio.sleep(0.05)
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        release.set()
        await first

    run(main)
    adapter.close()  # waits for the pool: the cancelled request's work item has run by now
    assert calls == 1, "a request cancelled while queued must not run the app later"


def test_pathsend_names_a_file_opened_from_a_descriptor(
    make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        # Opened from a descriptor: its name is an int; the kernel still knows the path.
        handle = open(os.open(path, os.O_RDONLY), "rb")  # noqa: SIM115
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    extensions: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
    result = run(lambda: call_http(adapter, http_scope(extensions=extensions)))
    assert result.messages[1]["type"] == "http.response.pathsend"
    assert result.messages[1]["path"] == str(path.resolve())


def test_pathsend_needs_a_regular_file(make_adapter: MakeAdapter) -> None:
    opened: list[Any] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        # A character device: it has a path and a position, but no size to send.
        handle = open(os.devnull, "rb")  # noqa: SIM115 - the wrapper's close() closes it
        opened.append(handle)
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    extensions: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
    result = run(lambda: call_http(adapter, http_scope(extensions=extensions)))
    assert result.body == b""
    assert "http.response.pathsend" not in {m["type"] for m in result.messages}
    assert opened[0].closed
