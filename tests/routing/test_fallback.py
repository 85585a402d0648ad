"""``Fallback``: the primary first; its 404s (or chosen statuses) go to the legacy app."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import Iterable
from typing import IO, Any
from wsgiref.validate import validator

import flask
import pytest

import crossgate.routing._fallback as fallback_module
from crossgate.exceptions import CrossgateError
from crossgate.routing import Fallback
from crossgate.testing import call_http, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.routing.conftest import Recorder, Router, WebSocketClient, run

DENIAL: dict[str, dict[object, object]] = {"websocket.http.response": {}}


class Primary:
    """The new app: serves ``/new``; for anything else reads some body, then answers 404.

    ``reads``: how many body messages to read before answering (``None``: until the end).
    """

    def __init__(self, *, reads: int | None = 0, status: int = 404) -> None:
        self.reads = reads
        self.status = status
        self.received: list[Message] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["path"] == "/new":
            await Recorder("new")(scope, receive, send)
            return
        while self.reads is None or len(self.received) < self.reads:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"primary says no"})


class Legacy:
    """The old app: reads the whole body, answers its length and digest; keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.scopes: list[Message] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        self.scopes.append(scope)
        body = b""
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        text = f"legacy {len(body)} {hashlib.sha256(body).hexdigest()[:12]}"
        await Recorder(text)(scope, receive, send)


def summary(body: bytes) -> str:
    return f"legacy {len(body)} {hashlib.sha256(body).hexdigest()[:12]}"


def post(router: Any, path: str, body: list[bytes], **options: Any) -> Any:
    scope = http_scope("POST", path)
    return run(lambda: call_http(router, scope, body=body, **options))


def test_primary_answer_goes_out_and_the_fallback_never_runs() -> None:
    legacy = Legacy()
    router = Fallback(Primary(), legacy)
    result = run(lambda: call_http(router, http_scope("GET", "/new")))
    assert (result.status, result.text) == (200, "new")
    assert legacy.scopes == []


def test_a_404_before_any_body_goes_to_the_fallback() -> None:
    router = Fallback(Primary(), Legacy())
    result = run(lambda: call_http(router, http_scope("GET", "/old")))
    # The client sees the fallback's answer only: the primary's 404 never left.
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.body"]
    assert (result.status, result.text) == (200, summary(b""))


@pytest.mark.parametrize("reads", [0, 1, 2, None], ids=["none", "first", "two", "all"])
def test_the_body_is_replayed_to_the_fallback(reads: int | None) -> None:
    chunks = [b"alpha-", b"beta-", b"gamma-", b"delta"]
    legacy = Legacy()
    router = Fallback(Primary(reads=reads), legacy)
    result = post(router, "/old", chunks)
    assert result.text == summary(b"".join(chunks))
    # However much the primary read, the fallback sees one well-formed body: more_body until
    # the last message.
    flags = [m.get("more_body", False) for m in legacy.messages]
    assert flags[-1] is False
    assert all(flags[:-1])


def test_an_empty_body_the_primary_read_is_replayed() -> None:
    legacy = Legacy()
    router = Fallback(Primary(reads=1), legacy)
    run(lambda: call_http(router, http_scope("GET", "/old")))
    assert legacy.messages[0] == {"type": "http.request", "body": b"", "more_body": False}


class SpoolWatch:
    """Records the temporary files the fallback machinery opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, allowed: bool = True) -> None:
        self.files: list[IO[bytes]] = []
        self.allowed = allowed
        self.real = tempfile.TemporaryFile
        monkeypatch.setattr(tempfile, "TemporaryFile", self.open)

    def open(self) -> IO[bytes]:
        if not self.allowed:
            raise AssertionError("the body was spooled to disk")
        handle = self.real()
        self.files.append(handle)
        return handle


def test_a_body_past_buffer_size_is_spooled_then_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = SpoolWatch(monkeypatch)
    monkeypatch.setattr(fallback_module, "REPLAY_CHUNK", 7)
    chunks = [bytes([n]) * 10 for n in range(10)]  # 100 bytes
    router = Fallback(Primary(reads=None), Legacy(), buffer_size=25)
    result = post(router, "/old", chunks)
    assert result.text == summary(b"".join(chunks))
    assert len(spool.files) == 1
    assert spool.files[0].closed


def test_the_spool_closes_as_soon_as_the_primary_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    spool = SpoolWatch(monkeypatch)
    closed_at_answer: list[bool] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        closed_at_answer.append(spool.files[0].closed)
        await send({"type": "http.response.body", "body": b"kept"})

    router = Fallback(primary, Legacy(), buffer_size=5)
    result = post(router, "/upload", [b"0123456789"] * 3)
    assert result.text == "kept"
    assert closed_at_answer == [True]


def test_past_max_replay_the_primarys_404_goes_out(caplog: pytest.LogCaptureFixture) -> None:
    legacy = Legacy()
    router = Fallback(Primary(reads=None), legacy, buffer_size=4, max_replay=10)
    with caplog.at_level(logging.WARNING, logger="crossgate.routing"):
        result = post(router, "/old", [b"0123456789", b"x"])
    assert (result.status, result.text) == (404, "primary says no")
    assert legacy.scopes == []
    assert "max_replay" in caplog.text


def test_within_max_replay_the_request_still_falls_through() -> None:
    router = Fallback(Primary(reads=None), Legacy(), buffer_size=4, max_replay=11)
    result = post(router, "/old", [b"0123456789", b"x"])
    assert result.text == summary(b"0123456789x")


def test_an_upload_the_primary_accepts_is_neither_kept_nor_read_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The primary answers first, then streams a 10 MiB upload through: nothing is recorded
    # (no temporary file, no memory), and the live receive() is called exactly as often as
    # the primary calls it, at every step (the server's flow control is the primary's).
    SpoolWatch(monkeypatch, allowed=False)
    chunk = b"u" * 65536
    count = 160
    live_calls = 0
    mismatches: list[tuple[int, int]] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        mine = 0
        total = 0
        while True:
            message = await receive()
            mine += 1
            if live_calls != mine:
                mismatches.append((mine, live_calls))
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.body", "body": str(total).encode()})

    async def main() -> Any:
        router = Fallback(primary, Legacy(), buffer_size=1024, max_replay=None)
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal live_calls
            live_calls += 1
            return {"type": "http.request", "body": chunk, "more_body": live_calls < count}

        async def send(message: Message) -> None:
            sent.append(message)

        await router(http_scope("POST", "/upload"), receive, send)
        return sent

    sent = run(main)
    assert sent[-1]["body"] == str(count * len(chunk)).encode()
    assert mismatches == []
    assert live_calls == count


def test_no_read_ahead_while_the_primary_may_fall_through() -> None:
    live_calls = 0
    seen: list[int] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        for _ in range(3):
            await receive()
            seen.append(live_calls)
        await send({"type": "http.response.start", "status": 404, "headers": []})

    async def main() -> None:
        router = Fallback(primary, Legacy())
        parts = [b"a", b"b", b"c", b"d", b"e"]

        async def receive() -> Message:
            nonlocal live_calls
            live_calls += 1
            return {
                "type": "http.request",
                "body": parts[live_calls - 1],
                "more_body": live_calls < 5,
            }

        async def send(message: Message) -> None:
            pass

        await router(http_scope("POST", "/x"), receive, send)

    run(main)
    assert seen == [1, 2, 3]  # one live message per primary receive(), never more
    assert live_calls == 5  # the fallback read the two the primary left


@pytest.mark.parametrize(
    ("status", "falls_through"), [(404, True), (405, True), (500, False), (200, False)]
)
def test_only_the_chosen_statuses_fall_through(status: int, falls_through: bool) -> None:
    router = Fallback(Primary(status=status), Legacy(), statuses=(404, 405))
    result = run(lambda: call_http(router, http_scope("GET", "/old")))
    assert (result.text == summary(b"")) is falls_through
    if not falls_through:
        assert (result.status, result.text) == (status, "primary says no")


def test_what_the_primary_writes_in_its_scope_never_reaches_the_fallback() -> None:
    # Starlette's router updates the scope in place (endpoint, path_params, root_path for its
    # own mounts) and its Request writes request.state into scope["state"].
    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        scope["root_path"] = "/primary-mount"
        scope["endpoint"] = "primary"
        scope["state"]["user"] = "primary"
        await send({"type": "http.response.start", "status": 404, "headers": []})

    legacy = Legacy()
    router = Fallback(primary, legacy)
    scope = http_scope("GET", "/old")
    run(lambda: call_http(router, scope))
    seen = legacy.scopes[0]
    assert seen["root_path"] == ""
    assert "endpoint" not in seen
    assert seen["state"] == {}


def test_a_server_without_state_support_gets_no_state_key() -> None:
    seen: list[Message] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(scope)
        await Recorder()(scope, receive, send)

    scope = http_scope("GET", "/")
    del scope["state"]
    result = run(lambda: call_http(Fallback(primary, Legacy()), scope))
    assert result.status == 200
    assert "state" not in seen[0]


def test_a_client_that_left_is_replayed_as_gone() -> None:
    legacy = Legacy()
    router = Fallback(Primary(reads=None), legacy)
    scope = http_scope("POST", "/old")
    run(lambda: call_http(router, scope, body=[b"part"], body_complete=False))
    assert [m["type"] for m in legacy.messages] == ["http.request", "http.disconnect"]
    assert legacy.messages[0]["more_body"] is True


def test_the_primarys_leftover_tasks_cannot_take_the_fallbacks_messages() -> None:
    leftover: list[Message] = []
    gate = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        async def later() -> None:
            await gate.wait()
            leftover.append(await receive())
            await send({"type": "http.response.start", "status": 200, "headers": []})

        tasks.append(asyncio.create_task(later()))
        await send({"type": "http.response.start", "status": 404, "headers": []})

    async def legacy(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        gate.set()
        await tasks[0]
        body = await receive()
        await Recorder(body["body"].decode())(scope, receive, send)

    router = Fallback(primary, legacy)
    result = post(router, "/old", [b"for the fallback"])
    assert result.text == "for the fallback"
    assert leftover == [{"type": "http.disconnect"}]
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize("case", ["fallback waits", "fallback reads later", "leftover cancelled"])
def test_a_leftover_receive_already_waiting_hands_its_message_to_the_fallback(case: str) -> None:
    # The primary's reader task is already waiting on the server when the primary answers 404,
    # and the next body message arrives only once the fallback runs: it reaches that task,
    # which must pass it on, or the fallback would get a truncated body as if it were whole.
    # "fallback reads later": the message arrives before the fallback asks for it (kept for
    # it); "leftover cancelled": the leftover task never gets it, so the fallback reads it live.
    leftover: list[Message] = []
    waiting = asyncio.Event()
    fallback_started = asyncio.Event()
    fallback_may_read = asyncio.Event()
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    tasks: list[asyncio.Task[None]] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        first = await receive()
        assert first["body"] == b"one-"

        async def reader() -> None:
            waiting.set()
            leftover.append(await receive())

        tasks.append(asyncio.create_task(reader()))  # left behind: the primary returns
        await waiting.wait()
        await send({"type": "http.response.start", "status": 404, "headers": []})

    async def legacy(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        body = (await receive())["body"]  # the replayed first message
        fallback_started.set()
        await fallback_may_read.wait()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await Recorder(body.decode())(scope, receive, send)

    async def server_receive() -> Message:
        return await incoming.get()

    async def server_send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        incoming.put_nowait({"type": "http.request", "body": b"one-", "more_body": True})
        app = asyncio.create_task(
            Fallback(primary, legacy)(http_scope("POST", "/old"), server_receive, server_send)
        )
        await asyncio.wait_for(fallback_started.wait(), 5)
        two = {"type": "http.request", "body": b"two", "more_body": False}
        if case == "fallback waits":
            fallback_may_read.set()
            await asyncio.sleep(0)  # the fallback now waits for the leftover's message
            incoming.put_nowait(two)
        elif case == "fallback reads later":
            incoming.put_nowait(two)
            await asyncio.wait_for(tasks[0], 5)  # the leftover has it and passed it on
            fallback_may_read.set()
        else:
            fallback_may_read.set()
            await asyncio.sleep(0)
            tasks[0].cancel()
            await asyncio.sleep(0)
            incoming.put_nowait(two)
        await asyncio.wait_for(app, 5)
        await asyncio.gather(tasks[0], return_exceptions=True)

    run(main)
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"one-two"
    assert leftover == ([] if case == "leftover cancelled" else [{"type": "http.disconnect"}])


def test_a_primary_that_raises_is_the_servers_to_report() -> None:
    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        raise RuntimeError("primary bug")

    router = Fallback(primary, Legacy())
    result = run(lambda: call_http(router))
    assert isinstance(result.error, RuntimeError)
    assert result.status is None


def test_a_primary_that_never_answers_leaves_the_answer_to_the_server() -> None:
    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        pass

    legacy = Legacy()
    router = Fallback(primary, legacy)
    result = run(lambda: call_http(router))
    assert result.messages == []
    assert legacy.scopes == []


# --- WSGI on either side ----------------------------------------------------------------------


def legacy_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"legacy wsgi got " + body]


def test_wsgi_primary_and_wsgi_fallback(routers: list[Router]) -> None:
    new = flask.Flask(__name__)

    @new.get("/new")
    def served() -> str:
        return "new flask"

    router = Fallback(validator(new), validator(legacy_wsgi))
    routers.append(router)
    scope = http_scope("POST", "/old", headers=[(b"content-length", b"9")])
    # WSGIToASGI reads the first body message before it runs Flask, and more ahead of it:
    # all of it is replayed to the fallback.
    old = run(lambda: call_http(router, scope, body=[b"cross", b"gate"]))
    new_answer = run(lambda: call_http(router, http_scope("GET", "/new")))
    assert old.text == "legacy wsgi got crossgate"
    assert new_answer.text == "new flask"


# --- websockets -------------------------------------------------------------------------------


class WSPrimary:
    """Accepts ``/new``; refuses anything else by closing, or with an HTTP ``denial`` status."""

    def __init__(self, denial: int | None = None) -> None:
        self.denial = denial

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        if scope["path"] == "/new":
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": f"new {message.get('text')}"})
            await send({"type": "websocket.close", "code": 1000})
        elif self.denial is None:
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send(
                {"type": "websocket.http.response.start", "status": self.denial, "headers": []}
            )
            await send({"type": "websocket.http.response.body", "body": b"no"})


class WSLegacy:
    def __init__(self) -> None:
        self.received: list[Message] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        self.received.append(await receive())
        await send({"type": "websocket.accept"})
        message = await receive()
        self.received.append(message)
        await send({"type": "websocket.send", "text": f"legacy echo {message.get('text')}"})
        await send({"type": "websocket.close", "code": 1000})


def ws(router: Any, path: str, **scope: Any) -> WebSocketClient:
    client = WebSocketClient(
        {"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}
    )
    run(
        lambda: router(
            http_scope(path=path, type="websocket", **scope), client.receive, client.send
        )
    )
    return client


def test_websocket_closed_before_accept_goes_to_the_fallback() -> None:
    legacy = WSLegacy()
    client = ws(Fallback(WSPrimary(), legacy), "/old")
    assert client.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert client.sent[1]["text"] == "legacy echo hi"
    # The fallback got the handshake the primary had received, then the live message.
    assert legacy.received == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
    ]


def test_websocket_the_primary_accepts_stays_there() -> None:
    legacy = WSLegacy()
    client = ws(Fallback(WSPrimary(), legacy), "/new")
    assert client.sent[1]["text"] == "new hi"
    assert legacy.received == []


@pytest.mark.parametrize("denial", [404, 403, 500])
def test_websocket_denial_response_falls_through_whatever_its_status(denial: int) -> None:
    legacy = WSLegacy()
    client = ws(Fallback(WSPrimary(denial=denial), legacy), "/old", extensions=DENIAL)
    assert client.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert client.sent[1]["text"] == "legacy echo hi"


@pytest.mark.parametrize("extensions", [{}, DENIAL], ids=["close", "denial"])
def test_websocket_a_wsgi_primary_refuses_goes_to_the_fallback(
    extensions: dict[str, dict[object, object]], routers: list[Router]
) -> None:
    # WSGIToASGI refuses websockets: with a 403 denial response where the server offers the
    # extension, a close before accept where it does not. Both must hand over.
    legacy = WSLegacy()
    router = Fallback(validator(legacy_wsgi), legacy)
    routers.append(router)
    client = ws(router, "/ws", extensions=extensions)
    assert client.sent[1]["text"] == "legacy echo hi"


def test_leftover_websocket_receive_after_handover_is_a_disconnect() -> None:
    leftover: list[Message] = []
    keep: list[ASGIReceive] = []

    async def primary(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        keep.append(receive)
        await send({"type": "websocket.close", "code": 1000})

    async def legacy(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        leftover.append(await keep[0]())
        await receive()
        await send({"type": "websocket.close", "code": 1000})

    ws(Fallback(primary, legacy), "/old")
    assert leftover == [{"type": "websocket.disconnect", "code": 1000}]


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"statuses": ()}, "at least one"),
        ({"statuses": (99,)}, "not an HTTP status"),
        ({"statuses": ("404",)}, "not an HTTP status"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"max_replay": 0}, "max_replay"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Fallback(Primary(), Legacy(), **options)


def test_the_same_app_twice_is_refused() -> None:
    app = Legacy()
    with pytest.raises(ValueError, match="same app"):
        Fallback(app, app)


def test_other_scope_types_raise() -> None:
    async def no_receive() -> Message:  # pragma: no cover - never called
        raise AssertionError

    async def no_send(message: Message) -> None:  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(CrossgateError, match="'custom'"):
        run(lambda: Fallback(Primary(), Legacy())({"type": "custom"}, no_receive, no_send))
