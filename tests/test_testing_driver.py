"""Tests of ``crossgate.testing`` itself: the in-memory ASGI driver and its conformance checker.

Users rely on this driver to test their own apps, and crossgate's adapter tests rely on it too,
so it is tested directly with tiny hand-written ASGI apps. Each test runs its coroutine with
``asyncio.run`` (a fresh loop per test, no plugin needed).
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.responses import JSONResponse

from crossgate.exceptions import AppProtocolError
from crossgate.testing import (
    ASGIConformanceError,
    HTTPConformanceChecker,
    HTTPResult,
    call_http,
    call_lifespan,
    call_websocket,
    http_scope,
)
from crossgate.types import ASGIReceive, ASGISend, Message

Scope = MutableMapping[str, Any]

START: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": []}


def body(data: bytes = b"", *, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


# --- http_scope --------------------------------------------------------------------------------


def test_http_scope_defaults() -> None:
    scope = http_scope()
    assert scope["type"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/"
    assert scope["raw_path"] == b"/"
    assert scope["query_string"] == b""
    assert scope["root_path"] == ""
    assert scope["scheme"] == "http"
    assert scope["http_version"] == "1.1"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["server"] == ("127.0.0.1", 8000)
    # A real client always sends Host (RFC 9112 section 3.2); the driver adds one like it.
    assert scope["headers"] == [(b"host", b"127.0.0.1:8000")]
    assert scope["extensions"] == {}
    assert scope["state"] == {}


@pytest.mark.parametrize(
    ("path", "raw_path", "expected"),
    [
        # The ASGI spec: raw_path is the undecoded target; without escapes, path as UTF-8.
        ("/caf\xe9", None, b"/caf\xc3\xa9"),
        ("/a b", None, b"/a b"),
        ("/a\ufffdb", b"/a%FFb", b"/a%FFb"),
    ],
)
def test_http_scope_raw_path(path: str, raw_path: bytes | None, expected: bytes) -> None:
    scope = http_scope(path=path, raw_path=raw_path)
    assert scope["path"] == path
    assert scope["raw_path"] == expected


@pytest.mark.parametrize(
    ("kwargs", "headers"),
    [
        # A Host the test gives (in any case) is kept, not doubled.
        pytest.param(
            {"headers": [(b"Host", b"example.com")]}, [(b"host", b"example.com")], id="given"
        ),
        pytest.param(
            {"headers": [(b"X-A", b"1")]},
            [(b"host", b"127.0.0.1:8000"), (b"x-a", b"1")],
            id="added-first-names-lowered",
        ),
        pytest.param(
            {"server": ("example.com", 443)}, [(b"host", b"example.com:443")], id="server"
        ),
        # No server address: nothing to derive a Host from.
        pytest.param({"server": None}, [], id="no-server"),
        # RFC 3986 section 3.2.2 / RFC 9110 section 7.2: an IPv6 literal in Host is bracketed.
        pytest.param({"server": ("::1", 8000)}, [(b"host", b"[::1]:8000")], id="ipv6-server"),
    ],
)
def test_http_scope_host_header(kwargs: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    assert http_scope(**kwargs)["headers"] == headers


def test_http_scope_websocket_has_no_method() -> None:
    # The ASGI websocket scope has no "method" key.
    scope = http_scope(type="websocket")
    assert scope["type"] == "websocket"
    assert "method" not in scope


def test_http_scope_passes_fields_through() -> None:
    scope = http_scope(
        "POST",
        "/app/x",
        query_string=b"a=1",
        root_path="/app",
        scheme="https",
        http_version="2",
        client=None,
        extensions={"http.response.pathsend": {}},
    )
    assert (scope["method"], scope["path"], scope["root_path"]) == ("POST", "/app/x", "/app")
    assert (scope["query_string"], scope["scheme"], scope["http_version"]) == (b"a=1", "https", "2")
    assert scope["client"] is None
    assert scope["extensions"] == {"http.response.pathsend": {}}


# --- HTTPConformanceChecker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        [START, body(b"hello")],
        [START, {"type": "http.response.body"}],
        [START, body(b"a", more=True), body(b"", more=True), body(b"b")],
        [
            {"type": "http.response.start", "status": 404, "headers": [(b"x-a", b"1")]},
            body(),
        ],
        # Server extensions (ASGI spec, "Extensions"): pathsend and zerocopysend.
        [START, {"type": "http.response.pathsend", "path": "/tmp/f"}],
        [START, {"type": "http.response.zerocopysend", "file": 3}],
        [
            START,
            {"type": "http.response.zerocopysend", "file": 3, "more_body": True},
            {"type": "http.response.zerocopysend", "file": 3, "more_body": False},
        ],
        # Every declared byte sent, then the end said apart.
        [{**START, "headers": [(b"content-length", b"2")]}, body(b"ok", more=True), body()],
        # 204 and 304 carry the length of a body they never send (RFC 9110).
        [{**START, "status": 304, "headers": [(b"content-length", b"9")]}, body()],
    ],
)
def test_checker_accepts_a_valid_sequence(messages: list[dict[str, Any]]) -> None:
    checker = HTTPConformanceChecker()
    for message in messages:
        checker.check(message)
    assert checker.started
    assert checker.complete


def test_checker_tracks_progress() -> None:
    checker = HTTPConformanceChecker()
    assert (checker.started, checker.complete) == (False, False)
    checker.check(START)
    assert (checker.started, checker.complete) == (True, False)
    checker.check(body(b"a", more=True))
    assert checker.complete is False
    checker.check(body(b"b"))
    assert checker.complete is True


@pytest.mark.parametrize(
    "messages",
    [
        # ASGI HTTP spec: http.response.start comes first, exactly once ...
        pytest.param([body(b"x")], id="body-before-start"),
        pytest.param([{"type": "http.response.pathsend", "path": "/f"}], id="pathsend-first"),
        pytest.param([START, START], id="start-twice"),
        pytest.param([START, body(b"a", more=True), START], id="start-after-body"),
        # ... with an int status ...
        pytest.param([{**START, "status": "200"}], id="status-str"),
        pytest.param([{**START, "status": 200.0}], id="status-float"),
        pytest.param([{**START, "status": None}], id="status-None"),
        pytest.param([{"type": "http.response.start", "headers": []}], id="status-missing"),
        pytest.param([{**START, "status": 99}], id="status-99"),
        pytest.param([{**START, "status": 600}], id="status-600"),
        # ... and byte-string, lower-case header names (and byte values).
        pytest.param([{**START, "headers": [("x-a", b"1")]}], id="name-str"),
        pytest.param([{**START, "headers": [(b"x-a", "1")]}], id="value-str"),
        pytest.param([{**START, "headers": [(b"X-A", b"1")]}], id="name-upper"),
        pytest.param([{**START, "headers": [(b"x-a", b"1"), (b"Content-Type", b"t")]}], id="2nd"),
        pytest.param([START, {"type": "http.response.body", "body": "text"}], id="body-str"),
        pytest.param([{**START, "headers": [(b"x a", b"1")]}], id="name-not-a-token"),
        pytest.param([{**START, "headers": [(b"x-a", b"1\r\nx-b: 2")]}], id="value-injection"),
        # The adapters' own rules: a final status WSGI can send, and the Content-Length kept.
        pytest.param([{**START, "status": 103}], id="status-1xx"),
        pytest.param(
            [{**START, "headers": [(b"content-length", b"2")]}, body(b"long")], id="past-length"
        ),
        pytest.param(
            [{**START, "headers": [(b"content-length", b"5")]}, body(b"shrt")], id="short"
        ),
        pytest.param(
            [{**START, "headers": [(b"content-length", b"1"), (b"content-length", b"2")]}],
            id="two-lengths",
        ),
        # Nothing after the response is complete ...
        pytest.param([START, body(b"done"), body(b"more")], id="body-after-complete"),
        pytest.param([START, body(), START], id="start-after-complete"),
        # ... and pathsend completes it, like a final body.
        pytest.param(
            [START, {"type": "http.response.pathsend", "path": "/f"}, body()],
            id="body-after-pathsend",
        ),
        pytest.param(
            [START, {"type": "http.response.zerocopysend", "file": 3}, body()],
            id="body-after-final-zerocopysend",
        ),
        # Messages of other protocols, or of none.
        pytest.param([START, {"type": "websocket.send", "text": "x"}], id="websocket-message"),
        pytest.param([START, {"type": "http.response.bogus"}], id="unknown-type"),
        pytest.param([{"type": "lifespan.startup.complete"}], id="lifespan-message"),
        pytest.param([{}], id="no-type"),
    ],
)
def test_checker_rejects(messages: list[dict[str, Any]]) -> None:
    checker = HTTPConformanceChecker()
    *valid, bad = messages
    for message in valid:
        checker.check(message)
    with pytest.raises(ASGIConformanceError):
        checker.check(bad)


def test_a_head_answer_may_carry_a_length_it_does_not_send() -> None:
    checker = HTTPConformanceChecker(head=True)
    checker.check({**START, "headers": [(b"content-length", b"100")]})
    checker.check(body())
    assert checker.complete


def test_zerocopysend_with_more_body_keeps_the_response_open() -> None:
    checker = HTTPConformanceChecker()
    checker.check(START)
    checker.check({"type": "http.response.zerocopysend", "file": 3, "more_body": True})
    assert not checker.complete
    checker.check(body(b"tail"))
    assert checker.complete


# --- call_http -----------------------------------------------------------------------------------


async def hello_app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"x-a", b"1")],
        }
    )
    await send(body(b"caf\xc3\xa9", more=True))
    await send(body(b"!"))


def test_call_http_collects_the_response() -> None:
    result = asyncio.run(call_http(hello_app))
    assert result.status == 200
    assert result.body == b"caf\xc3\xa9!"
    assert result.text == "caf\xe9!"
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert result.complete is True
    assert result.disconnected is False
    assert result.error is None
    assert [m["type"] for m in result.messages] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]


def test_call_http_records_pathsend() -> None:
    # The driver offers what the scope's extensions offer; pathsend ends the response.
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send(START)
        await send({"type": "http.response.pathsend", "path": "/srv/file.txt"})

    scope = http_scope(extensions={"http.response.pathsend": {}})
    result = asyncio.run(call_http(app, scope))
    assert result.complete is True
    assert result.body == b""
    assert result.messages[-1] == {"type": "http.response.pathsend", "path": "/srv/file.txt"}


def test_call_http_passes_the_scope() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(scope)
        await send(START)
        await send(body())

    given = http_scope("PUT", "/x")
    asyncio.run(call_http(app, given))
    assert seen[0]["method"] == "PUT"
    assert seen[0]["path"] == "/x"
    # A default scope when none is given: GET /.
    asyncio.run(call_http(app))
    assert (seen[1]["method"], seen[1]["path"]) == ("GET", "/")


def _recording_app(received: list[Message]) -> Any:
    """An app that reads the whole request (and what follows it), then answers 200."""

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                break
        await send(START)
        await send(body(b"ok"))

    return app


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (b"", [(b"", False)]),
        (b"whole", [(b"whole", False)]),
        ([b"ab", b"cd", b"ef"], [(b"ab", True), (b"cd", True), (b"ef", False)]),
    ],
)
def test_call_http_sends_the_body(
    request_body: bytes | list[bytes], expected: list[tuple[bytes, bool]]
) -> None:
    received: list[Message] = []
    result = asyncio.run(call_http(_recording_app(received), body=request_body))
    assert [(m["body"], m["more_body"]) for m in received] == expected
    assert all(m["type"] == "http.request" for m in received)
    assert result.status == 200


def test_client_leaving_mid_upload_shows_as_http_disconnect() -> None:
    # body_complete=False: every chunk says more_body=True, then the client is gone, which the
    # app sees as http.disconnect (ASGI HTTP spec, "Disconnect - receive event").
    received: list[Message] = []
    result = asyncio.run(
        call_http(_recording_app(received), body=[b"ab", b"cd"], body_complete=False)
    )
    assert [m["type"] for m in received] == ["http.request", "http.request", "http.disconnect"]
    assert [m.get("more_body") for m in received[:2]] == [True, True]
    assert result.disconnected is True
    # The app's answer went nowhere: send raised OSError, as uvicorn's does.
    assert isinstance(result.error, OSError)
    assert result.status is None


def test_receive_after_the_body_waits_for_the_response() -> None:
    # Like uvicorn: once the body is read, receive() blocks until the response is complete
    # (or the client leaves), then reports http.disconnect.
    observed: list[object] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        waiter = asyncio.ensure_future(receive())
        await asyncio.sleep(0.01)
        observed.append(waiter.done())
        await send(START)
        await send(body(b"done"))
        observed.append((await waiter)["type"])

    result = asyncio.run(call_http(app))
    assert observed == [False, "http.disconnect"]
    assert result.complete is True
    assert result.disconnected is False


def _streaming_app(chunks: int, size: int, after: list[str]) -> Any:
    """Streams ``chunks`` body chunks of ``size`` bytes; records what happened afterwards."""

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send(START)
        for _ in range(chunks):
            await send(body(b"x" * size, more=True))
        await send(body())
        after.append((await receive())["type"])

    return app


def test_disconnect_after_bytes_then_send_raises() -> None:
    after: list[str] = []
    result = asyncio.run(call_http(_streaming_app(5, 4, after), disconnect_after_bytes=6))
    # The client left once it had 8 >= 6 bytes; the third chunk's send raised.
    assert result.disconnected is True
    assert result.body == b"x" * 8
    assert result.complete is False
    assert isinstance(result.error, OSError)
    assert after == []


def test_disconnect_after_bytes_with_silent_send() -> None:
    after: list[str] = []
    result = asyncio.run(
        call_http(
            _streaming_app(5, 4, after),
            disconnect_after_bytes=6,
            send_raises_after_disconnect=False,
        )
    )
    # Sends after the disconnect are dropped without an error (some servers do this); the app
    # finds out from receive().
    assert result.disconnected is True
    assert result.body == b"x" * 8
    assert result.complete is False
    assert result.error is None
    assert after == ["http.disconnect"]
    assert len(result.messages) == 3


def test_disconnect_after_seconds() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await asyncio.sleep(0.05)
        await send(START)

    result = asyncio.run(call_http(app, disconnect_after=0))
    assert result.disconnected is True
    assert isinstance(result.error, OSError)
    assert result.messages == []


def test_app_exception_is_stored_not_raised() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(START)
        raise ValueError("broken app")

    result = asyncio.run(call_http(app))
    assert isinstance(result.error, ValueError)
    assert str(result.error) == "broken app"
    assert result.status == 200
    assert result.complete is False


def test_conformance_error_is_raised() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(body(b"no start"))

    with pytest.raises(ASGIConformanceError):
        asyncio.run(call_http(app))


def test_check_false_lets_anything_through() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(body(b"no start"))
        await send(START)

    result = asyncio.run(call_http(app, check=False))
    assert result.error is None
    assert result.body == b"no start"
    assert result.status == 200


def test_timeout_is_raised() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(call_http(app, timeout=0.05))


def test_send_delay_slows_each_send() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await send(START)
        await send(body(b"x"))

    # A client slower than the deadline: the second send never finishes in time.
    with pytest.raises(TimeoutError):
        asyncio.run(call_http(app, send_delay=0.2, timeout=0.3))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", "text/plain"),
        ("Content-Type", "text/plain"),
        ("SET-COOKIE", "a=1"),
        ("x-latin", "caf\xe9"),
        ("x-missing", None),
    ],
)
def test_result_header(name: str, value: str | None) -> None:
    result = HTTPResult(
        headers=[
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"x-latin", b"caf\xe9"),
        ]
    )
    # The first value of a repeated header; values decoded as latin-1 like everywhere in HTTP.
    assert result.header(name) == value


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"caf\xc3\xa9", "caf\xe9"), (b"bad \xff", "bad \ufffd")],
)
def test_result_text(data: bytes, text: str) -> None:
    assert HTTPResult(body=data).text == text


# --- call_lifespan -------------------------------------------------------------------------------


def test_call_lifespan_runs_startup_and_shutdown() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        assert scope["type"] == "lifespan"
        scope["state"]["ready"] = True
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    state: dict[str, Any] = {}
    result = asyncio.run(call_lifespan(app, state=state))
    assert [m["type"] for m in seen] == ["lifespan.startup", "lifespan.shutdown"]
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # The state dict is shared with the app (ASGI lifespan spec, "Lifespan State").
    assert state == {"ready": True}


def test_call_lifespan_startup_failure_skips_shutdown() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    result = asyncio.run(call_lifespan(app))
    assert result.types == ["lifespan.startup.failed"]
    assert result.messages[0]["message"] == "no database"


def test_call_lifespan_raises_app_errors() -> None:
    # An app without lifespan support raises on the lifespan scope (ASGI lifespan spec);
    # the driver lets that through for the test to see.
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        raise RuntimeError("lifespan not supported")

    with pytest.raises(RuntimeError, match="not supported"):
        asyncio.run(call_lifespan(app))


def test_call_lifespan_refuses_a_response_as_uvicorn_does() -> None:
    # A Starlette Response used as the whole app answers every scope with http.response.start;
    # the driver's send() raises into it, as uvicorn's does, and the error reaches the test.
    with pytest.raises(AppProtocolError, match=r"'http\.response\.start' on the lifespan scope"):
        asyncio.run(call_lifespan(JSONResponse({"a": 1})))


def test_call_lifespan_refuses_a_second_answer() -> None:
    refused: list[BaseException] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no"})
        try:
            await send({"type": "lifespan.startup.complete"})
        except AppProtocolError as exc:
            refused.append(exc)

    result = asyncio.run(call_lifespan(app))
    assert result.types == ["lifespan.startup.failed", "lifespan.startup.complete"]
    assert len(refused) == 1


def test_call_lifespan_timeout() -> None:
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await receive()  # never sent: startup was not completed

    with pytest.raises(TimeoutError):
        asyncio.run(call_lifespan(app, timeout=0.05))


# --- call_websocket ------------------------------------------------------------------------------


def test_call_websocket_accept_send_close() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        assert scope["type"] == "websocket"
        seen.append(await receive())
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hi"})
        await send({"type": "websocket.close", "code": 1000})

    sent = asyncio.run(call_websocket(app))
    assert [m["type"] for m in seen] == ["websocket.connect"]
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "hi"


def test_call_websocket_refused() -> None:
    # Closing before accepting refuses the handshake (ASGI websocket spec, "Close - send").
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    assert asyncio.run(call_websocket(app)) == [{"type": "websocket.close", "code": 1008}]


def test_call_websocket_uses_the_given_scope() -> None:
    paths: list[str] = []

    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        paths.append(scope["path"])
        await send({"type": "websocket.close"})

    asyncio.run(call_websocket(app, http_scope(path="/ws", type="websocket")))
    assert paths == ["/ws"]


def test_call_websocket_client_waits_after_connect() -> None:
    # After websocket.connect the fake client sends nothing more; an app waiting for a
    # message runs into the timeout rather than getting an invented event.
    async def app(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    with pytest.raises(TimeoutError):
        asyncio.run(call_websocket(app, timeout=0.05))


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        ("1.1", [], [(b"content-length", b"5")]),  # as an HTTP/1 client and server give it
        ("1.0", [], [(b"content-length", b"5")]),
        ("1.1", [(b"transfer-encoding", b"chunked")], [(b"transfer-encoding", b"chunked")]),
        ("1.1", [(b"content-length", b"5")], [(b"content-length", b"5")]),
        ("2", [], []),  # HTTP/2 frames a body without either header
    ],
)
def test_call_http_frames_an_http1_body_as_a_server_would(
    version: str, headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append([h for h in scope["headers"] if h[0] != b"host"])
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = http_scope("POST", headers=headers, http_version=version)
    asyncio.run(call_http(app, scope, body=[b"he", b"llo"]))
    asyncio.run(call_http(app, http_scope("GET", http_version=version)))
    assert seen == [expected, []]
