"""Composition: ``WSGIToASGI(ASGIToWSGI(app))`` answers like ``app``, and
``ASGIToWSGI(WSGIToASGI(app))`` like the WSGI ``app``, over a table and a hypothesis strategy.

Each side is an echo: the app answers with what it saw of the request (as JSON) in a response
whose status, headers and body chunks the request itself describes, so one comparison covers
both directions of both adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.testing import call_http, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.asgi_to_wsgi._apps import read_body
from tests.asgi_to_wsgi.conftest import Input, Mode, make_environ, run_wsgi

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- ASGI app inside both adapters ----------------------------------------------------------


def _response_plan(query: bytes) -> tuple[int, list[bytes]]:
    """The status and body chunks a request asks for in its query string: "s=201&n=3"."""
    fields = dict(part.split(b"=", 1) for part in query.split(b"&") if b"=" in part)
    status = int(fields.get(b"s", b"200"))
    count = int(fields.get(b"n", b"1"))
    return status, [b"chunk %d;" % n for n in range(count)]


async def echo_scope(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    body, _ = await read_body(receive)
    seen = {
        "method": scope["method"],
        "path": scope["path"].encode("utf-8", "surrogateescape").decode("latin-1"),
        "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": sorted(
            [k.decode("latin-1"), v.decode("latin-1")]
            for k, v in scope["headers"]
            if k != b"content-length"
        ),
        "scheme": scope["scheme"],
        "http_version": scope["http_version"],
        "body": body.decode("latin-1"),
    }
    status, chunks = _response_plan(scope["query_string"])
    headers = [(b"content-type", b"application/json"), (b"x-echo", b"1")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode(), "more_body": True})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body"})


@contextlib.contextmanager
def asgi_stack(mode: Mode) -> Iterator[Any]:
    inner = ASGIToWSGI(echo_scope, mode=mode)
    outer = WSGIToASGI(inner)
    try:
        yield outer
    finally:
        outer.close()
        inner.shutdown()


def _asgi_outcome(app: Any, scope: dict[str, Any], body: list[bytes]) -> tuple[Any, ...]:
    result = asyncio.run(call_http(app, scope, body=body))
    assert result.error is None, result.error
    headers = sorted((k, v) for k, v in result.headers if k not in (b"content-length",))
    return result.status, headers, result.body


def _scope(
    method: str,
    raw_path: bytes,
    root_path: str = "",
    query: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> dict[str, Any]:
    # As a server that decodes the way ASGIToWSGI does (surrogateescape for bytes that are
    # not UTF-8): the app must then see the same path directly and through the stack.
    path = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
    return http_scope(
        method, path, raw_path=raw_path, root_path=root_path, query_string=query, headers=headers
    )


ASGI_TABLE = [
    pytest.param(_scope("GET", b"/"), [b""], id="get"),
    pytest.param(
        _scope("POST", b"/up", query=b"s=201&n=3"), [b"a" * 70_000, b"b" * 10], id="post-chunks"
    ),
    pytest.param(_scope("GET", b"/caf%C3%A9/%FF", query=b"q=%20"), [b""], id="encoded-path"),
    pytest.param(_scope("GET", b"/a%2Fb"), [b""], id="encoded-slash"),
    pytest.param(_scope("GET", b"/app/x", root_path="/app"), [b""], id="root-path"),
    pytest.param(
        _scope(
            "PUT", b"/h", headers=[(b"x-a", b"1"), (b"cookie", b"a=1; b=2"), (b"x-latin", b"\xe9")]
        ),
        [b"{}"],
        id="headers",
    ),
    pytest.param(_scope("DELETE", b"/", query=b"s=404&n=0"), [b""], id="not-found"),
]


@pytest.mark.parametrize(("scope", "body"), ASGI_TABLE)
@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_wsgi_to_asgi_of_asgi_to_wsgi_answers_like_the_app(
    thread_leak_check: None, scope: dict[str, Any], body: list[bytes], mode: Mode
) -> None:
    direct = _asgi_outcome(echo_scope, dict(scope), body)
    with asgi_stack(mode) as stack:
        through = _asgi_outcome(stack, dict(scope), body)

    assert through == direct


_header_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8
).filter(lambda n: n not in ("host", "content-length", "content-type"))
_header_values = st.binary(max_size=10).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
)
_raw_paths = st.lists(
    st.one_of(
        st.sampled_from([b"/", b"a", b"%FF", b"%2F", b"%C3%A9", b"%20", b"~", b"%25"]),
        st.binary(max_size=2).map(lambda b: quote(b).encode()),
    ),
    max_size=6,
).map(lambda parts: b"/" + b"".join(parts))


@st.composite
def asgi_requests(draw: st.DrawFn) -> tuple[dict[str, Any], list[bytes]]:
    names = draw(st.lists(_header_names, unique=True, max_size=5))
    headers = [(name.encode(), draw(_header_values)) for name in names]
    root = draw(st.sampled_from(["", "/app"]))
    raw = draw(_raw_paths)
    if root:
        raw = b"/app" + raw
    status = draw(st.sampled_from([200, 201, 404, 500]))
    count = draw(st.integers(min_value=0, max_value=4))
    scope = _scope(
        draw(st.sampled_from(["GET", "POST", "PUT", "PATCH"])),
        raw,
        root,
        b"s=%d&n=%d" % (status, count),
        headers,
    )
    body = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
    return scope, body


@PROPERTY
@given(request=asgi_requests(), mode=st.sampled_from(["inline", "shared"]))
def test_wsgi_to_asgi_of_asgi_to_wsgi_answers_like_the_app_property(
    request: tuple[dict[str, Any], list[bytes]], mode: Mode
) -> None:
    scope, body = request
    direct = _asgi_outcome(echo_scope, dict(scope), body)
    with asgi_stack(mode) as stack:
        through = _asgi_outcome(stack, dict(scope), body)

    assert through == direct


# --- WSGI app inside both adapters ----------------------------------------------------------

# PEP 3333 keys the WSGI app reports; the rest differ by design (wsgi.multithread is always
# true under WSGIToASGI, which also adds RAW_URI, REQUEST_URI and HTTPS).
_REPORTED = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
)


def echo_environ(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {key: environ.get(key) or None for key in _REPORTED}
    seen.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
    seen["body"] = body.decode("latin-1")
    status, chunks = _response_plan(environ["QUERY_STRING"].encode("latin-1"))
    phrase = {200: "OK", 201: "Created", 404: "Not Found", 500: "Internal Server Error"}
    start_response(f"{status} {phrase[status]}", [("Content-Type", "application/json")])
    return [json.dumps(seen, sort_keys=True).encode(), *chunks]


@contextlib.contextmanager
def wsgi_stack(mode: Mode) -> Iterator[Any]:
    inner = WSGIToASGI(echo_environ)
    outer = ASGIToWSGI(inner, mode=mode)
    try:
        yield outer
    finally:
        outer.shutdown()
        inner.close()


def _wsgi_outcome(app: Any, environ: dict[str, Any]) -> tuple[Any, ...]:
    result = run_wsgi(app, environ)
    assert result.error is None, result.error
    headers = sorted((k.lower(), v) for k, v in result.headers if k.lower() != "content-length")
    return result.status, headers, result.body


def _environ(
    method: str, path: str, query: str = "", body: bytes = b"", **extra: Any
) -> dict[str, Any]:
    return make_environ(
        method,
        path,
        query=query,
        body=Input(body, limit=len(body)),
        content_length=len(body) if body else None,
        extra=extra,
    )


WSGI_TABLE = [
    pytest.param(lambda: _environ("GET", "/"), id="get"),
    pytest.param(lambda: _environ("POST", "/up", "s=201&n=3", b"x" * 70_000), id="post"),
    pytest.param(lambda: _environ("GET", "/caf\xc3\xa9/\xff", "q=%20"), id="latin1-path"),
    pytest.param(lambda: _environ("GET", "/x", SCRIPT_NAME="/app"), id="script-name"),
    pytest.param(lambda: _environ("GET", "", SCRIPT_NAME="/app"), id="root-of-mount"),
    pytest.param(
        lambda: _environ("GET", "/", HTTP_COOKIE="a=1; b=2", HTTP_X_A="\xe9"), id="headers"
    ),
    pytest.param(lambda: _environ("GET", "/", "s=404&n=0", CONTENT_TYPE="text/plain"), id="404"),
]


@pytest.mark.parametrize("make", WSGI_TABLE)
@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_asgi_to_wsgi_of_wsgi_to_asgi_answers_like_the_wsgi_app(
    thread_leak_check: None, make: Any, mode: Mode
) -> None:
    direct = _wsgi_outcome(echo_environ, make())
    with wsgi_stack(mode) as stack:
        through = _wsgi_outcome(stack, make())

    assert through == direct


_latin1 = st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=8)


@st.composite
def wsgi_requests(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from([200, 201, 404, 500]))
    count = draw(st.integers(min_value=0, max_value=4))
    extra: dict[str, Any] = {
        "SCRIPT_NAME": draw(st.sampled_from(["", "/app", "/caf\xc3\xa9"])),
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"])),
    }
    names = draw(
        st.lists(
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
            unique=True,
            max_size=4,
        )
    )
    for name in names:
        if name not in ("HOST", "CONTENT"):
            extra["HTTP_X_" + name] = draw(_latin1.map(lambda t: t.strip(" \t")))
    path = draw(st.one_of(st.just(""), _latin1.map(lambda t: "/" + t)))
    if not extra["SCRIPT_NAME"] and not path:
        path = "/"
    return _environ(
        draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"])),
        path,
        f"s={status}&n={count}",
        draw(st.binary(max_size=200)),
        **extra,
    )


@PROPERTY
@given(environ=wsgi_requests(), mode=st.sampled_from(["inline", "shared"]))
def test_asgi_to_wsgi_of_wsgi_to_asgi_answers_like_the_wsgi_app_property(
    environ: dict[str, Any], mode: Mode
) -> None:
    stream: Input = environ["wsgi.input"]
    data = stream._data.getvalue()
    direct = _wsgi_outcome(echo_environ, environ)
    environ["wsgi.input"] = Input(data, limit=len(data))
    with wsgi_stack(mode) as stack:
        through = _wsgi_outcome(stack, environ)

    assert through == direct


# --- Flask through both adapters, driven by werkzeug's own test client -----------------------


def _flask_app() -> Any:
    app = Flask(__name__)

    @app.route("/<path:rest>")
    def show(rest: str) -> dict[str, str]:
        return {
            "rest": rest,
            "path": request.path,
            "PATH_INFO": request.environ["PATH_INFO"],
            "SCRIPT_NAME": request.environ["SCRIPT_NAME"],
            "url": request.url,
        }

    return app


@pytest.mark.parametrize("script_name", ["/app", ""])
@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_flask_relative_urls_through_both_adapters(
    thread_leak_check: None, script_name: str, mode: Mode
) -> None:
    # werkzeug's test client makes PATH_INFO "foo" for client.get("foo"): it must reach Flask
    # as "foo" under SCRIPT_NAME, never "/appfoo".
    flask_app = _flask_app()
    inner = WSGIToASGI(flask_app)
    outer = ASGIToWSGI(inner, mode=mode)
    overrides = {"SCRIPT_NAME": script_name}
    try:
        direct = Client(flask_app).get("foo/bar", environ_overrides=overrides)
        through = Client(outer).get("foo/bar", environ_overrides=overrides)
    finally:
        outer.shutdown()
        inner.close()

    assert direct.status_code == through.status_code == 200
    assert direct.json is not None
    assert direct.json["PATH_INFO"] == "foo/bar"
    assert through.json == direct.json


def test_a_relative_url_reaches_a_starlette_route() -> None:
    # The ASGI path is absolute: "foo" under SCRIPT_NAME "/app" is "/app/foo", routed as "/foo".

    async def show(request: Request) -> JSONResponse:
        scope = request.scope
        return JSONResponse({"path": scope["path"], "root_path": scope["root_path"]})

    adapter = ASGIToWSGI(Starlette(routes=[Route("/foo", show)]), mode="inline")
    try:
        response = Client(adapter).get("foo", environ_overrides={"SCRIPT_NAME": "/app"})
    finally:
        adapter.shutdown()

    assert response.status_code == 200
    assert response.json == {"path": "/app/foo", "root_path": "/app"}
