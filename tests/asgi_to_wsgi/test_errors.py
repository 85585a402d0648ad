"""ASGIToWSGI when the app fails or breaks the ASGI spec: what reaches the WSGI server (the
app's exception, by default), 500s and aborts with ``raise_app_exceptions=False``, and what is
logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from crossgate.exceptions import AppProtocolError, ResponseAborted
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import TEXT
from tests.asgi_to_wsgi.conftest import MakeAdapter, make_environ, run_wsgi

Send = Callable[[Message], Awaitable[None]]


class Boom(Exception):
    pass


def _app(steps: Callable[[Send], Awaitable[None]]) -> Any:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await steps(send)

    return app


START = {"type": "http.response.start", "status": 200, "headers": TEXT}


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "crossgate"]


async def _raise_first(send: Send) -> None:
    raise Boom("before the start")


async def _raise_after_start(send: Send) -> None:
    await send(START)
    raise Boom("after the start")


async def _return_silently(send: Send) -> None:
    return


async def _return_after_start(send: Send) -> None:
    await send(START)


@pytest.mark.parametrize(
    ("steps", "message", "replaced"),
    [
        (_raise_first, "raised Boom: before the start", False),
        # start_response was called, nothing went out yet: PEP 3333 lets exc_info replace it.
        (_raise_after_start, "raised Boom: after the start", True),
        (_return_silently, "returned without completing its response", False),
        (_return_after_start, "returned without completing its response", True),
    ],
)
def test_failure_before_any_body_is_a_logged_500_without_raising(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    steps: Callable[[Send], Awaitable[None]],
    message: str,
    replaced: bool,
) -> None:
    result = run_wsgi(make_adapter(_app(steps), raise_app_exceptions=False))

    assert result.status == "500 Internal Server Error"
    assert result.body == b"500 Internal Server Error\n"
    assert result.error is None
    if replaced:
        assert [status for status, _ in result.start_calls] == ["200 OK", result.status]
        assert result.start_calls[1][1] is not None
    else:
        assert result.start_calls == [(result.status, None)]
    errors = _errors(caplog)
    assert len(errors) == 1
    assert message in errors[0].getMessage()
    assert "the client got a 500" in errors[0].getMessage()
    assert errors[0].exc_info is not None


@pytest.mark.parametrize(
    ("steps", "raised", "from_call"),
    [
        (_raise_first, Boom, True),
        # start_response was called, no body byte went out: the iterable raises, and the
        # server answers 500 itself (PEP 3333 lets it replace the headers).
        (_raise_after_start, Boom, False),
        (_return_silently, AppProtocolError, True),
        (_return_after_start, AppProtocolError, False),
    ],
)
def test_failure_before_any_body_reaches_the_wsgi_server(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    steps: Callable[[Send], Awaitable[None]],
    raised: type[Exception],
    from_call: bool,
) -> None:
    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run_wsgi(make_adapter(_app(steps)), catch_call=True)

    error = result.call_error if from_call else result.error
    assert type(error) is raised
    assert (result.call_error is None) is not from_call
    assert result.body == b""
    # The server logs the traceback (gunicorn: "Error handling request"); crossgate says
    # only what the client got, once, below ERROR.
    assert _errors(caplog) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "crossgate"]
    assert len(lines) == 1
    assert "the exception was raised to the server" in lines[0]


@pytest.mark.parametrize("raise_app_exceptions", [True, False])
def test_failure_after_body_bytes_aborts_the_response(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture, raise_app_exceptions: bool
) -> None:
    async def steps(send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        # Gives the server the chunk first, in shared mode as in inline mode.
        await asyncio.sleep(0.01)
        raise Boom("mid-body")

    with caplog.at_level(logging.INFO, logger="crossgate"):
        adapter = make_adapter(_app(steps), raise_app_exceptions=raise_app_exceptions)
        result = run_wsgi(adapter)

    # The status is out: the iterable raises so that the server drops the connection rather
    # than let a truncated body pass for a whole one; by default with the app's exception.
    assert result.body == b"partial"
    if raise_app_exceptions:
        assert isinstance(result.error, Boom)
    else:
        assert isinstance(result.error, ResponseAborted)
        assert isinstance(result.error.__cause__, Boom)
    assert len(result.start_calls) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "crossgate"]
    assert len(lines) == 1
    assert "raised Boom: mid-body after the response headers were sent" in lines[0]
    assert "the connection was aborted" in lines[0]


async def _body_before_start(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"x"})


async def _start_twice(send: Send) -> None:
    await send(START)
    await send(START)


async def _bad_status(send: Send) -> None:
    await send({**START, "status": "200"})


async def _informational_status(send: Send) -> None:
    await send({**START, "status": 103})


async def _header_injection(send: Send) -> None:
    await send({**START, "headers": [(b"x-a", b"1\r\nSet-Cookie: stolen")]})


async def _str_body(send: Send) -> None:
    await send(START)
    await send({"type": "http.response.body", "body": "text"})


async def _unknown_type(send: Send) -> None:
    await send({"type": "websocket.accept"})


async def _swallowed(send: Send) -> None:
    # An app that catches the error and carries on still gets its 500: the response broke.
    with contextlib.suppress(AppProtocolError):
        await send({"type": "http.response.body", "body": b"x"})
    with contextlib.suppress(AppProtocolError):
        await send(START)
        await send({"type": "http.response.body", "body": b"fine?"})


@pytest.mark.parametrize(
    "steps",
    [
        _body_before_start,
        _start_twice,
        _bad_status,
        _informational_status,
        _header_injection,
        _str_body,
        _unknown_type,
        _swallowed,
    ],
)
def test_protocol_violation_is_a_logged_500_without_raising(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    steps: Callable[[Send], Awaitable[None]],
) -> None:
    result = run_wsgi(make_adapter(_app(steps), raise_app_exceptions=False))

    assert result.code == 500
    errors = _errors(caplog)
    assert errors
    assert "broke the protocol" in errors[0].getMessage()
    assert isinstance(errors[0].exc_info and errors[0].exc_info[1], AppProtocolError)


@pytest.mark.parametrize(
    "steps",
    [
        _body_before_start,
        _start_twice,
        _bad_status,
        _informational_status,
        _header_injection,
        _str_body,
        _unknown_type,
        _swallowed,
    ],
)
def test_protocol_violation_reaches_the_wsgi_server(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    steps: Callable[[Send], Awaitable[None]],
) -> None:
    # crossgate's own protocol errors are the app's bugs: an error tracker around the
    # adapter must see them with the request they broke, as it sees the app's exceptions.
    result = run_wsgi(make_adapter(_app(steps)), catch_call=True)

    error = result.call_error or result.error
    assert isinstance(error, AppProtocolError)
    assert result.body == b""
    assert _errors(caplog) == []


@pytest.mark.parametrize("raise_app_exceptions", [True, False])
def test_the_server_keeps_serving_after_failures(
    make_adapter: MakeAdapter, raise_app_exceptions: bool
) -> None:
    calls = 0

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        nonlocal calls
        if scope["type"] != "http":
            return
        calls += 1
        if calls % 2:
            raise Boom("odd")
        await send(START)
        await send({"type": "http.response.body", "body": b"even"})

    adapter = make_adapter(app, raise_app_exceptions=raise_app_exceptions)
    results = [run_wsgi(adapter, catch_call=True) for _ in range(6)]

    if raise_app_exceptions:
        outcomes = [type(r.call_error).__name__ if r.call_error else r.code for r in results]
        assert outcomes == ["Boom", 200] * 3
    else:
        assert [r.code for r in results] == [500, 200] * 3


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"REQUEST_METHOD": ""}, 400),
        ({"PATH_INFO": b"/bytes"}, 400),
        ({"CONTENT_LENGTH": "-5"}, 400),
    ],
)
def test_environ_breaking_pep_3333_is_a_4xx_and_the_app_never_runs(
    make_adapter: MakeAdapter, fields: dict[str, Any], status: int
) -> None:
    ran: list[Message] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        ran.append(scope)

    environ = make_environ()
    environ.update(fields)
    result = run_wsgi(make_adapter(app, lifespan="off"), environ, validate=False)

    assert result.code == status
    assert ran == []
