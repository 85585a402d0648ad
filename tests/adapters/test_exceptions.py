"""WSGIToASGI: the app's exceptions reach the server, body chunks are checked, the log tells
what the client got, and a long poll is closed when its client leaves."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from crossgate import AppProtocolError, ResponseAborted
from crossgate.adapters.wsgi_to_asgi._exchange import WorkerExchange
from crossgate.sansio.exchange import WorkerEvent, next_phase
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import Message, StartResponse, WSGIEnvironment
from tests.adapters.conftest import MakeAdapter, run

TEXT = [("Content-Type", "text/plain")]


class Boom(Exception):
    pass


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "crossgate"]


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "crossgate" and r.levelno >= logging.ERROR]


# -- exceptions reach the server (issue 14, item 3) ----------------------------------------------


def test_exception_before_the_response_is_answered_500_then_raised(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    error = Boom("database down")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise error

    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(app)))

    # The ASGI convention (Starlette's ServerErrorMiddleware): answer 500, then raise the very
    # exception to the server and to the middleware around the adapter.
    assert result.status == 500
    assert result.complete
    assert result.body == b"500 Internal Server Error\n"
    assert result.error is error
    # The server will drop this connection (uvicorn does once the app raised): the client
    # is told not to reuse it.
    assert result.header("connection") == "close"
    # The server logs the traceback; crossgate says what the client got, once, below ERROR.
    assert _errors(caplog) == []
    assert _lines(caplog) == [
        "the WSGI app raised Boom: database down before the response headers were sent; "
        "the client got a 500, and the exception was raised to the server"
    ]


def test_exception_after_the_headers_aborts_then_raises_the_apps_exception(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"partial"
        raise Boom("mid-body")

    # send_buffer=1: the worker waits until the loop has sent the headers before going on.
    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(app, send_buffer=1)))

    assert result.status == 200
    assert not result.complete
    assert isinstance(result.error, Boom)  # not wrapped: Sentry shows the app's own error
    assert _lines(caplog) == [
        "the WSGI app raised Boom: mid-body after the response headers were sent; the "
        "connection was aborted, and the exception was raised to the server"
    ]


def test_option_off_keeps_todays_answer_and_log(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise Boom("kept")

    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(app, raise_app_exceptions=False)))

    assert result.status == 500
    assert result.error is None
    assert result.header("connection") is None
    [record] = _errors(caplog)
    assert record.exc_info is not None
    assert record.exc_info[0] is Boom
    assert "the client got a 500" in record.getMessage()
    assert "raised to the server" not in record.getMessage()


def test_sys_exit_in_the_app_does_not_stop_the_servers_loop(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise SystemExit(3)

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 500
    assert result.error is None


def test_request_errors_are_never_raised(make_adapter: MakeAdapter) -> None:
    # A body over max_body_size is the client's fault: its 413, and nothing for Sentry.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"].read(1000)
        start_response("200 OK", TEXT)
        return [b"read"]

    result = run(
        lambda: call_http(
            make_adapter(app, max_body_size=10),
            http_scope("POST", headers=[(b"transfer-encoding", b"chunked")]),
            body=[b"x" * 8, b"x" * 8, b"x" * 8],
        )
    )
    assert result.status == 413
    assert result.error is None


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_starlette_test_client_sees_the_exception(
    make_adapter: MakeAdapter, raise_server_exceptions: bool
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise Boom("seen by the test")

    client = TestClient(make_adapter(app), raise_server_exceptions=raise_server_exceptions)
    if raise_server_exceptions:
        with pytest.raises(Boom, match="seen by the test"):
            client.get("/")
    else:
        response = client.get("/")
        assert response.status_code == 500
        assert response.text == "500 Internal Server Error\n"


# -- body chunks are bytes (issue 14, item 4) ----------------------------------------------------


@pytest.mark.parametrize("as_list", [False, True], ids=["iterator", "list"])
@pytest.mark.parametrize(("chunk", "type_name"), [("text", "str"), (42, "int"), (None, "NoneType")])
def test_a_chunk_that_is_not_bytes_is_a_clean_500_naming_its_type(
    make_adapter: MakeAdapter, chunk: object, type_name: str, as_list: bool
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[Any]:
        start_response("200 OK", TEXT)
        return [b"fine", chunk] if as_list else iter([chunk])

    # Not validated: the validator would catch the str itself, with an AssertionError.
    result = run(lambda: call_http(make_adapter(app, validate=False)))

    assert result.status == 500
    assert result.complete
    assert result.body == b"500 Internal Server Error\n"
    assert isinstance(result.error, AppProtocolError)
    assert f"of type {type_name}, not bytes" in str(result.error)


def test_bytes_like_chunks_are_accepted(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[Any]:
        write = start_response("200 OK", TEXT)
        write(bytearray(b"w"))  # type: ignore[arg-type]  # bytes-like, accepted
        yield b"a"
        yield bytearray(b"b")
        yield memoryview(b"c")

    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 200
    assert result.body == b"wabc"
    assert all(type(m.get("body", b"")) is bytes for m in result.messages)


def test_a_str_chunk_after_the_headers_aborts(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield b"partial"
        yield "then text"

    result = run(lambda: call_http(make_adapter(app, validate=False, send_buffer=1)))
    assert result.status == 200
    assert not result.complete
    assert isinstance(result.error, AppProtocolError)
    assert "of type str" in str(result.error)


# -- the log tells what the client got (issue 14, item 4) ----------------------------------------


def _exchange_failing_with_headers_still_queued(
    failure: BaseException, *, raise_app_exceptions: bool
) -> tuple[HTTPResult, BaseException | None]:
    """The worker committed its headers and a chunk, then failed, before the loop looked."""
    result = HTTPResult()

    async def main() -> BaseException | None:
        exchange = WorkerExchange(asyncio.get_running_loop(), read_ahead=10, send_buffer=1 << 20)
        exchange.phase = next_phase(exchange.phase, WorkerEvent.PICKED_UP)  # a worker took it
        start: Any = {"type": "http.response.start", "status": 200, "headers": []}
        exchange.push(start, b"first chunk")
        exchange.finish(failure)

        async def send(message: Message) -> None:
            result.messages.append(dict(message))
            if message["type"] == "http.response.start":
                result.status = message["status"]
            else:
                result.body += message.get("body", b"")

        try:
            await exchange.respond(send, raise_app_exceptions=raise_app_exceptions)
        except BaseException as exc:
            return exc
        return None

    return result, asyncio.run(main())


@pytest.mark.parametrize("raise_app_exceptions", [True, False])
def test_failure_while_the_headers_are_still_queued_logs_a_500_not_an_abort(
    caplog: pytest.LogCaptureFixture, raise_app_exceptions: bool
) -> None:
    # An iterator that raises after its first chunk, before the loop took the start: the
    # client gets a clean 500, and the log says so (it used to say "aborting").
    failure = Boom("after the first chunk")
    with caplog.at_level(logging.INFO, logger="crossgate"):
        result, raised = _exchange_failing_with_headers_still_queued(
            failure, raise_app_exceptions=raise_app_exceptions
        )

    assert result.status == 500
    assert result.body == b"500 Internal Server Error\n"
    assert raised is (failure if raise_app_exceptions else None)
    [line] = _lines(caplog)
    assert "before the response headers were sent; the client got a 500" in line
    assert "abort" not in line


def test_a_server_whose_send_fails_during_the_error_page_still_gets_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = Boom("before any header")

    async def main() -> BaseException | None:
        exchange = WorkerExchange(asyncio.get_running_loop(), read_ahead=10, send_buffer=10)
        exchange.phase = next_phase(exchange.phase, WorkerEvent.PICKED_UP)  # a worker took it
        exchange.finish(failure)

        async def send(message: Message) -> None:
            raise OSError("connection reset")  # the client left, unannounced

        try:
            await exchange.respond(send)
        except BaseException as exc:
            return exc
        return None

    assert asyncio.run(main()) is failure


def test_short_body_logs_what_the_client_got_in_every_run(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    # A body shorter than its Content-Length: whether the headers left before the worker
    # found the shortfall is a race between two threads; in every run the log line must
    # match what this client received.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        yield b"abc"

    adapter = make_adapter(app, validate=False)
    for _ in range(20):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="crossgate"):
            result = run(lambda: call_http(adapter))
        [line] = _lines(caplog)
        assert "3 bytes fewer" not in line
        assert "7 bytes fewer than its Content-Length" in line
        if result.status == 500:
            assert result.complete
            assert "the client got a 500" in line
        else:
            assert result.status == 200
            assert not result.complete
            assert "the connection was aborted" in line


def test_peer_error_after_headers_aborts_with_response_aborted(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    # The body passes max_body_size after the app began its response: the client's fault,
    # so not raised as the app's, but the connection must still drop.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"started"
        environ["wsgi.input"].read(1000)
        yield b"never"

    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(
            lambda: call_http(
                make_adapter(app, max_body_size=10, send_buffer=1, read_ahead=4),
                http_scope("POST", headers=[(b"transfer-encoding", b"chunked")]),
                body=[b"x" * 4, b"x" * 4, b"x" * 4, b"x" * 4],
            )
        )
    assert result.status == 200
    assert not result.complete
    assert isinstance(result.error, ResponseAborted)
    assert any(line.startswith("aborting the connection: ") for line in _lines(caplog))


# -- a long poll is closed when the client leaves (issue 14, item 7) -----------------------------


class LongPoll:
    """A long-poll body: empty chunks while it waits for news that never come.

    Bounded (``limit`` waits) so that a test without the fix ends instead of hanging.
    """

    def __init__(self, gone: threading.Event, limit: int = 200) -> None:
        self.gone = gone
        self.limit = limit
        self.waits = 0
        self.closed = threading.Event()
        self.gone_at_close = False

    def __iter__(self) -> Iterator[bytes]:
        while self.waits < self.limit:
            self.waits += 1
            time.sleep(0.02)
            yield b""

    def close(self) -> None:
        self.gone_at_close = self.gone.is_set()
        self.closed.set()


def test_long_poll_of_empty_chunks_is_closed_when_the_client_leaves(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[LongPoll] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        polls.append(LongPoll(environ["crossgate.disconnected"]))
        return polls[0]

    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(app), disconnect_after=0.2))

    [body] = polls
    assert result.disconnected
    assert result.status is None  # not one byte went out
    assert body.closed.is_set()
    # Closed after http.disconnect, because the client left, not because the poll ran out.
    assert body.gone_at_close
    assert body.waits < body.limit
    assert result.error is None
    assert _errors(caplog) == []
    assert any("the client disconnected" in line for line in _lines(caplog))


def test_empty_write_notices_the_client_left(make_adapter: MakeAdapter) -> None:
    waits = 0

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal waits
        write = start_response("200 OK", TEXT)
        while waits < 200:
            waits += 1
            time.sleep(0.02)
            write(b"")
        return []

    result = run(lambda: call_http(make_adapter(app), disconnect_after=0.2))
    assert result.disconnected
    assert waits < 200
