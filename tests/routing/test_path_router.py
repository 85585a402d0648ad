"""``PathRouter`` and ``Mount``: prefix matching, the child scope, WSGI apps under a mount."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import validator

import flask
import pytest

from crossgate.exceptions import CrossgateError
from crossgate.routing import Mount, PathRouter
from crossgate.testing import call_http, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.routing.conftest import Recorder, Router, WebSocketClient, run


def where(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A WSGI app answering the SCRIPT_NAME and PATH_INFO it was given."""
    start_response("200 OK", [("Content-Type", "application/json")])
    body = {"script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"]}
    return [json.dumps(body).encode()]


def make_flask() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/")
    def index() -> str:
        return "flask index"

    @app.get("/links")
    def links() -> dict[str, str]:
        return {
            "form": flask.url_for("form"),
            "index": flask.url_for("index"),
            "external": flask.url_for("form", _external=True),
        }

    @app.post("/form")
    def form() -> str:  # pragma: no cover - only its URL is built here
        return "form"

    return app


@pytest.fixture
def where_router(routers: list[Router]) -> PathRouter:
    router = PathRouter(
        [Mount("/legacy", validator(where)), Mount("/legacy/admin", validator(where))],
        default=Recorder("default"),
    )
    routers.append(router)
    return router


def get(router: Any, path: str, **scope: Any) -> Any:
    return run(lambda: call_http(router, http_scope("GET", path, **scope)))


@pytest.mark.parametrize(
    ("path", "script_name", "path_info"),
    [
        ("/legacy/cart", "/legacy", "/cart"),
        ("/legacy/", "/legacy", "/"),
        # The bare prefix is served, not redirected (a2wsgi #41: Flask answered 404 there).
        ("/legacy", "/legacy", ""),
        # Longest prefix first.
        ("/legacy/admin/users", "/legacy/admin", "/users"),
        ("/legacy/administrator", "/legacy", "/administrator"),
    ],
)
def test_wsgi_app_under_a_mount_sees_the_prefix_as_script_name(
    where_router: PathRouter, path: str, script_name: str, path_info: str
) -> None:
    result = get(where_router, path)
    assert result.status == 200
    assert json.loads(result.body) == {"script_name": script_name, "path_info": path_info}


@pytest.mark.parametrize("path", ["/legacyx", "/legac", "/", "/other/legacy"])
def test_only_segment_boundaries_match(where_router: PathRouter, path: str) -> None:
    assert get(where_router, path).text == "default"


def test_flask_url_for_is_right_under_the_mount(routers: list[Router]) -> None:
    router = PathRouter([Mount("/legacy", validator(make_flask()))])
    routers.append(router)

    links = json.loads(get(router, "/legacy/links").body)
    bare = get(router, "/legacy")
    index = get(router, "/legacy/")
    assert links == {
        "form": "/legacy/form",
        "index": "/legacy/",
        "external": "http://127.0.0.1:8000/legacy/form",
    }
    # The router serves /legacy (PATH_INFO ''); Flask itself redirects that to its root, as it
    # would under any WSGI server, and the redirect stays under the mount (a2wsgi #41: 404).
    assert bare.status == 308
    assert bare.header("location") == "http://127.0.0.1:8000/legacy/"
    assert (index.status, index.text) == (200, "flask index")


def echo(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))]


def test_request_body_reaches_the_mounted_wsgi_app(routers: list[Router]) -> None:
    router = PathRouter([Mount("/legacy", validator(echo))])
    routers.append(router)
    scope = http_scope("POST", "/legacy/echo", headers=[(b"content-length", b"9")])
    result = run(lambda: call_http(router, scope, body=[b"cross", b"gate"]))
    assert result.body == b"crossgate"


def test_flask_url_for_includes_the_servers_root_path_too(routers: list[Router]) -> None:
    router = PathRouter([Mount("/legacy", validator(make_flask()))])
    routers.append(router)
    links = json.loads(get(router, "/proxy/legacy/links", root_path="/proxy").body)
    assert links["form"] == "/proxy/legacy/form"


class ScopeKeeper:
    """An ASGI app that keeps a copy of each scope and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        self.scopes.append(dict(scope))
        await Recorder()(scope, receive, send)


def test_asgi_child_scope_follows_the_spec() -> None:
    child = ScopeKeeper()
    router = PathRouter([Mount("/api", child)])
    scope = http_scope("GET", "/root/api/items", root_path="/root", raw_path=b"/root/api/it%65ms")
    original = dict(scope)
    run(lambda: router(scope, _no_receive, _drop))

    seen = child.scopes[0]
    assert seen["root_path"] == "/root/api"
    assert seen["path"] == "/root/api/items"  # path includes root_path (ASGI spec)
    assert seen["raw_path"] == b"/root/api/it%65ms"
    assert scope == original, "the parent's scope must not change"


def test_older_servers_path_is_put_in_the_current_form() -> None:
    # hypercorn sends path without root_path; the child gets the spec's form.
    child = ScopeKeeper()
    router = PathRouter([Mount("/api", child)])
    scope = http_scope("GET", "/api/items", root_path="/root")
    run(lambda: router(scope, _no_receive, _drop))
    seen = child.scopes[0]
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == (
        "/root/api",
        "/root/api/items",
        b"/root/api/items",
    )


def test_older_servers_path_without_raw_path() -> None:
    child = ScopeKeeper()
    router = PathRouter([Mount("/api", child)])
    scope = http_scope("GET", "/api/items", root_path="/root")
    del scope["raw_path"]
    run(lambda: router(scope, _no_receive, _drop))
    seen = child.scopes[0]
    assert (seen["root_path"], seen["path"]) == ("/root/api", "/root/api/items")
    assert "raw_path" not in seen


def test_mounts_nest(routers: list[Router]) -> None:
    inner = PathRouter([Mount("/v1", validator(where))], default=Recorder("inner default"))
    outer = PathRouter([Mount("/api", inner)], default=Recorder("outer default"))
    routers.append(outer)

    deep = json.loads(get(outer, "/api/v1/users").body)
    assert deep == {"script_name": "/api/v1", "path_info": "/users"}
    assert get(outer, "/api/v2").text == "inner default"
    assert get(outer, "/apix").text == "outer default"


def test_default_gets_the_scope_as_it_came() -> None:
    default = Recorder("default")
    router = PathRouter([Mount("/api", Recorder())], default=default)
    scope = http_scope("GET", "/other")
    run(lambda: router(scope, _no_receive, _drop))
    assert default.scopes == [scope]
    assert default.scope is scope


def test_websocket_is_routed_by_path_too() -> None:
    chat = Recorder("chat")
    router = PathRouter([Mount("/ws", chat)], default=Recorder("default"))
    client = WebSocketClient()
    run(lambda: router(http_scope(path="/ws/room", type="websocket"), client.receive, client.send))
    assert client.sent[1]["text"] == "chat"
    assert chat.scope["root_path"] == "/ws"
    assert chat.scope["type"] == "websocket"


def test_no_match_and_no_default_is_a_404(caplog: pytest.LogCaptureFixture) -> None:
    router = PathRouter([Mount("/api", Recorder())])
    with caplog.at_level(logging.DEBUG, logger="crossgate.routing"):
        result = get(router, "/nothing")
    assert result.status == 404
    assert "no app is mounted" in result.text
    assert "/nothing" in caplog.text


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        (
            {},
            [{"type": "websocket.close", "code": 1008, "reason": "no app is mounted at this path"}],
        ),
        ({"websocket.http.response": {}}, "denial"),
    ],
)
def test_websocket_with_no_match_is_refused(extensions: Any, expected: Any) -> None:
    router = PathRouter([Mount("/api", Recorder())])
    client = WebSocketClient()
    scope = http_scope(path="/nothing", type="websocket", extensions=extensions)
    run(lambda: router(scope, client.receive, client.send))
    if expected == "denial":
        assert client.sent[0]["type"] == "websocket.http.response.start"
        assert client.sent[0]["status"] == 404
    else:
        assert client.sent == expected


def test_redirect_slashes_redirects_the_bare_prefix(where_router: PathRouter) -> None:
    router = PathRouter([Mount("/legacy", Recorder())], redirect_slashes=True)
    bare = get(router, "/legacy", query_string=b"page=2")
    below = get(router, "/legacy/")
    assert bare.status == 307
    assert bare.header("location") == "/legacy/?page=2"
    assert below.status == 200


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path"),
    [
        # An older server's path: the root is put in front of it, and cannot be encoded.
        ("/\ud800", "/legacy", b"/legacy"),
        # The redirect's Location is built from the path when there is no raw_path.
        ("/r\ud800", "/r\ud800/legacy", None),
    ],
)
def test_a_scope_path_that_is_not_unicode_is_a_400(
    root_path: str, path: str, raw_path: bytes | None
) -> None:
    router = PathRouter([Mount("/legacy", Recorder())], redirect_slashes=True)
    scope = http_scope("GET", "/", root_path=root_path)
    scope["path"], scope["raw_path"] = path, raw_path
    result = run(lambda: call_http(router, scope))
    assert result.status == 400
    assert "not valid Unicode" in result.text


def test_a_websocket_scope_that_is_not_unicode_is_refused() -> None:
    router = PathRouter([Mount("/legacy", Recorder())])
    client = WebSocketClient()
    scope = http_scope(path="/legacy", type="websocket", root_path="/\ud800")
    scope["path"] = "/legacy"
    run(lambda: router(scope, client.receive, client.send))
    assert client.sent[0]["type"] == "websocket.close"
    assert "not valid Unicode" in client.sent[0]["reason"]


def test_redirect_slashes_leaves_websockets_alone() -> None:
    chat = Recorder("chat")
    router = PathRouter([Mount("/ws", chat)], redirect_slashes=True)
    client = WebSocketClient()
    run(lambda: router(http_scope(path="/ws", type="websocket"), client.receive, client.send))
    assert client.sent[1]["text"] == "chat"


def test_lifespan_and_other_scopes() -> None:
    router = PathRouter([Mount("/api", Recorder())])
    with pytest.raises(CrossgateError, match="'custom'"):
        run(lambda: router({"type": "custom"}, _no_receive, _drop))
    default = Recorder()
    with_default = PathRouter([], default=default)
    run(lambda: with_default({"type": "custom"}, _no_receive, _drop))
    assert default.scope == {"type": "custom"}


def test_prefixes_are_listed_longest_first() -> None:
    router = PathRouter([Mount("/a", Recorder()), Mount("/a/b/", Recorder())])
    assert router.prefixes == ("/a/b", "/a")


@pytest.mark.parametrize(
    ("routes", "error", "words"),
    [
        ([Mount("/a", Recorder()), Mount("/a/", Recorder())], ValueError, "share the prefix"),
        (["/a"], TypeError, "Mount objects"),
    ],
)
def test_bad_routes_are_refused(routes: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        PathRouter(routes)


def test_mount_checks_its_prefix() -> None:
    with pytest.raises(ValueError, match="default"):
        Mount("/", Recorder())
    assert repr(Mount("/a/", where)).startswith("Mount('/a', <function where")


async def _no_receive() -> Message:  # pragma: no cover - these apps never receive
    raise AssertionError("receive() was called")


async def _drop(message: Message) -> None:
    pass
