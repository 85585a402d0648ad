"""``ProtocolRouter``: dispatch on the scope type, clear errors for types it has no app for."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest

from crossgate.exceptions import CrossgateError
from crossgate.routing import ProtocolRouter
from crossgate.testing import call_http, call_lifespan, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.routing.conftest import Recorder, Router, WebSocketClient, run

DENIAL: dict[str, dict[object, object]] = {"websocket.http.response": {}}


def legacy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"legacy " + environ["PATH_INFO"].encode("latin-1")]


def test_http_and_websocket_go_to_their_apps(routers: list[Router]) -> None:
    ws = Recorder("from websocket app")
    router = ProtocolRouter({"http": legacy, "websocket": ws})
    routers.append(router)

    result = run(lambda: call_http(router, http_scope("GET", "/page")))
    client = WebSocketClient()
    run(lambda: router(http_scope(path="/ws", type="websocket"), client.receive, client.send))

    assert result.text == "legacy /page"
    assert client.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert client.sent[1]["text"] == "from websocket app"


def test_scope_goes_through_untouched() -> None:
    # Dispatch is a dictionary lookup: without lifespan state to add, the app gets the very
    # scope object the server sent, no copy.
    app = Recorder()
    router = ProtocolRouter({"http": app})
    scope = http_scope()
    run(lambda: call_http(router, scope))
    assert app.scopes[0] is not scope  # call_http copies the scope once itself ...
    sent = app.scopes[0]
    run(lambda: router(sent, _never_receive, _ignore_send))
    assert app.scopes[1] is sent  # ... the router does not


async def _never_receive() -> dict[str, object]:  # pragma: no cover - Recorder never receives
    raise AssertionError("receive() was called")


async def _ignore_send(message: object) -> None:
    pass


def test_missing_http_entry_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    router = ProtocolRouter({"websocket": Recorder()})
    with caplog.at_level(logging.ERROR, logger="crossgate.routing"):
        result = run(lambda: call_http(router))
    assert result.status == 500
    assert "no app is configured for 'http' connections" in result.text
    assert result.complete
    assert any("'http'" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_missing_websocket_entry_closes_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    router = ProtocolRouter({"http": Recorder()})
    client = WebSocketClient()
    with caplog.at_level(logging.ERROR, logger="crossgate.routing"):
        run(lambda: router(http_scope(type="websocket"), client.receive, client.send))
    assert client.sent == [
        {
            "type": "websocket.close",
            "code": 1011,
            "reason": "no app is configured for 'websocket' connections",
        }
    ]
    assert any("'websocket'" in r.getMessage() for r in caplog.records)


def test_missing_websocket_entry_is_an_http_denial_when_the_server_can() -> None:
    router = ProtocolRouter({"http": Recorder()})
    client = WebSocketClient()
    scope = http_scope(type="websocket", extensions=DENIAL)
    run(lambda: router(scope, client.receive, client.send))
    assert client.types == ["websocket.http.response.start", "websocket.http.response.body"]
    assert client.sent[0]["status"] == 500
    assert b"no app is configured for 'websocket'" in client.sent[1]["body"]


def test_websocket_client_gone_before_the_handshake_gets_nothing() -> None:
    router = ProtocolRouter({})
    client = WebSocketClient({"type": "websocket.disconnect", "code": 1001})
    run(lambda: router(http_scope(type="websocket"), client.receive, client.send))
    assert client.sent == []


def test_unknown_scope_type_raises() -> None:
    # ASGI spec: an application raises for a scope type it does not know.
    router = ProtocolRouter({"http": Recorder()})
    with pytest.raises(CrossgateError, match="'telnet'"):
        run(lambda: router({"type": "telnet"}, _never_receive, _ignore_send))


def test_other_scope_types_can_have_an_entry() -> None:
    custom = Recorder()
    router = ProtocolRouter({"custom": custom})
    scope = {"type": "custom", "path": "/"}
    run(lambda: router(scope, _never_receive, _ignore_send))
    assert custom.scopes == [scope]


def test_lifespan_is_always_the_routers() -> None:
    # Neither app supports lifespan (Recorder raises on it, as Django's ASGIHandler does), yet
    # the server gets a complete lifespan: the router answers for itself.
    router = ProtocolRouter({"http": Recorder(), "websocket": Recorder()})
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_lifespan_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="fans it out"):
        ProtocolRouter({"http": Recorder(), "lifespan": Recorder()})


def test_one_app_for_two_types_is_one_sub_app(routers: list[Router]) -> None:
    router = ProtocolRouter({"http": legacy, "websocket": legacy})
    routers.append(router)
    assert len(router.apps) == 1
