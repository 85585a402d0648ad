"""ASGIToWSGI request bodies: pieces, CONTENT_LENGTH, chunked uploads, limits, back-pressure."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from crossgate.adapters.asgi_to_wsgi import READ_AHEAD
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import echo, read_body, respond
from tests.asgi_to_wsgi.conftest import Input, MakeAdapter, Mode, make_environ, run_wsgi

KIB = 1024


def test_body_arrives_in_read_size_pieces(make_adapter: MakeAdapter) -> None:
    body = bytes(range(256)) * 1000  # 256,000 bytes
    stream = Input(body, limit=len(body))

    result = run_wsgi(
        make_adapter(echo, read_size=64 * KIB),
        make_environ("POST", body=stream, content_length=len(body)),
    )

    assert result.body == body
    assert result.header("x-messages") == "http.request," * 3 + "http.request"
    assert max(stream.sizes) <= 64 * KIB


def test_content_length_is_never_read_past(make_adapter: MakeAdapter) -> None:
    # The client sent more than it declared (a pipelined next request, on a real socket):
    # PEP 3333 forbids reading it; Input fails the test if the adapter tries.
    stream = Input(b"0123456789" + b"NEXT REQUEST", limit=10)

    result = run_wsgi(make_adapter(echo), make_environ("POST", body=stream, content_length=10))

    assert result.body == b"0123456789"
    assert stream.position == 10


def test_chunked_upload_without_content_length_arrives_whole(make_adapter: MakeAdapter) -> None:
    # gunicorn de-chunks the body, gives no CONTENT_LENGTH and sets wsgi.input_terminated:
    # the input ends where the body ends (a2wsgi reads nothing here: 0 bytes of the body).
    body = b"chunk" * 30_000
    environ = make_environ("POST", body=Input(body), extra={"wsgi.input_terminated": True})

    result = run_wsgi(make_adapter(echo, read_size=16 * KIB), environ)

    assert result.body == body


def test_no_content_length_and_no_terminated_input_is_an_empty_body(
    make_adapter: MakeAdapter,
) -> None:
    # PEP 3333: without CONTENT_LENGTH the body is empty; reading would block on wsgiref.
    stream = Input(b"must not be read", limit=0)

    result = run_wsgi(make_adapter(echo), make_environ("POST", body=stream))

    assert result.body == b""
    assert result.header("x-messages") == "http.request"
    assert stream.position == 0


def test_body_is_read_only_as_the_app_asks(make_adapter: MakeAdapter, mode: Mode) -> None:
    # Back-pressure on the request side: the adapter must not read wsgi.input ahead of the
    # app. The app takes one message and looks at how far the input has been read.
    body = b"b" * (4 * 1024 * KIB)
    stream = Input(body, limit=len(body))
    seen: list[int] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await asyncio.sleep(0.01)  # room for an eager reader to run ahead
        seen.append(stream.position)
        await respond(send, b"ok")

    result = run_wsgi(
        make_adapter(app, read_size=16 * KIB),
        make_environ("POST", body=stream, content_length=len(body)),
    )

    assert result.body == b"ok"
    # Inline reads exactly what was asked. Shared mode read the first piece before the app
    # started, and a bounded window ahead of what the app took: far from the 4 MiB body.
    allowed = 16 * KIB if mode == "inline" else 2 * 16 * KIB + READ_AHEAD
    assert seen[0] <= allowed


def test_content_length_over_max_body_size_is_a_413_before_the_app(
    make_adapter: MakeAdapter,
) -> None:
    calls: list[Message] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        calls.append(scope)
        await respond(send, b"should not run")

    stream = Input(b"x" * 11, limit=11)
    result = run_wsgi(
        make_adapter(app, max_body_size=10, lifespan="off"),
        make_environ("POST", body=stream, content_length=11),
    )

    assert result.code == 413
    assert b"larger than 10 bytes" in result.body
    assert calls == []
    assert stream.position == 0


def test_chunked_body_over_max_body_size_is_a_413(make_adapter: MakeAdapter) -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        body, messages = await read_body(receive)
        seen.extend(messages)
        await respond(send, b"got %d" % len(body))

    environ = make_environ(
        "POST", body=Input(b"x" * 100_000), extra={"wsgi.input_terminated": True}
    )
    result = run_wsgi(make_adapter(app, max_body_size=50_000, read_size=16 * KIB), environ)

    assert result.code == 413
    # The app learnt the body will not come: http.disconnect, not a truncated "complete" body.
    assert seen[-1] == {"type": "http.disconnect"}
    assert all(m.get("more_body") for m in seen[:-1])


def test_an_app_that_started_its_response_before_a_413_is_ended(
    make_adapter: MakeAdapter, mode: Mode
) -> None:
    # The app sends its start, then reads a body that turns out too large: the answer is the
    # 413, and the app (which ignores the disconnect) must not be left running on the loop.
    ended = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        try:
            headers = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while (await receive())["type"] != "http.disconnect":
                pass
            await asyncio.sleep(3600)  # ignores the disconnect: the grace period ends it
        finally:
            ended.set()

    environ = make_environ(
        "POST", body=Input(b"x" * 100_000), extra={"wsgi.input_terminated": True}
    )
    adapter = make_adapter(app, max_body_size=50_000, read_size=16 * KIB, disconnect_grace=0.1)
    result = run_wsgi(adapter, environ)

    assert result.code == 413
    if mode == "inline":
        # Nothing runs this thread's loop between requests: it must be over already.
        assert ended.is_set()
    assert ended.wait(10)


@pytest.mark.parametrize(
    "end", ["eof", ConnectionResetError("reset by peer")], ids=["short", "reset"]
)
def test_client_leaving_mid_body_gives_http_disconnect(
    make_adapter: MakeAdapter, end: str | BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    # The client declared 100,000 bytes and left after 40,000: the app must see
    # http.disconnect, never a body that merely looks complete.
    seen: list[Message] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        _, messages = await read_body(receive)
        seen.extend(messages)
        await respond(send, b"too late")

    stream = Input(b"x" * 40_000, end=end)
    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run_wsgi(
            make_adapter(app, read_size=16 * KIB),
            make_environ("POST", body=stream, content_length=100_000),
        )

    assert seen[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in seen) <= 40_000
    assert result.code == 400
    # A client that leaves is no server error.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_invalid_content_length_is_a_400(make_adapter: MakeAdapter) -> None:
    environ = make_environ("POST")
    environ["CONTENT_LENGTH"] = "ten"

    result = run_wsgi(make_adapter(echo), environ, validate=False)

    assert result.code == 400
    assert b"invalid Content-Length" in result.body


def test_receive_after_the_body_waits_for_the_response_to_complete(
    make_adapter: MakeAdapter,
) -> None:
    # ASGI HTTP spec ("Disconnect"): http.disconnect comes once the response is sent (or the
    # client left), not as soon as the body is over: Django's ASGIHandler listens for it while
    # the view runs and would cancel the view.
    order: list[str] = []
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)

        async def listen() -> None:
            message = await receive()
            order.append(str(message["type"]))

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0.01)
        order.append("sending the end")
        await respond(send, b"done")
        await listener
        finished.set()

    result = run_wsgi(make_adapter(app))

    assert result.body == b"done"
    # In shared mode the app ends on the loop thread, after the server has the response.
    assert finished.wait(5.0)
    assert order == ["sending the end", "http.disconnect"]
