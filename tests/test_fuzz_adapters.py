"""Fuzz: random requests and random (often broken) applications through both adapters.

* `ASGIToWSGI`: a random environ (PEP 3333 keys with odd values, many headers, a bad
  ``CONTENT_LENGTH``) and an ASGI app sending random messages (any status, any header bytes,
  conflicting or invalid Content-Lengths, bodies longer or shorter than declared, junk messages).
* `WSGIToASGI`: a random scope and a WSGI app calling ``start_response`` with any status line and
  header list, and returning any body.

What the server gets is checked by `tests._fuzz`: one of crossgate's exceptions or a response
with clean headers and a body that keeps its Content-Length; never another exception or a hang.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.exceptions import CrossgateError
from crossgate.testing import call_http
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment
from tests._fuzz import (
    FUZZ,
    as_pairs,
    body_chunks,
    check_framing,
    check_header_pairs,
    clients,
    request_headers,
    response_headers,
    statuses,
)


class _Holder:
    script: Any = None


_current = _Holder()

# --- ASGIToWSGI -------------------------------------------------------------------------------

# One message of the random ASGI app: a start, a body piece, or something out of place.
_messages = st.one_of(
    st.builds(
        lambda status, headers: {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        },
        statuses,
        response_headers,
    ),
    st.builds(
        lambda body, more: {"type": "http.response.body", "body": body, "more_body": more},
        st.binary(max_size=40),
        st.booleans(),
    ),
    st.sampled_from(
        [
            {"type": "http.response.body", "body": "not bytes"},
            {"type": "http.response.trailers", "headers": []},
            {"type": "websocket.send", "text": "x"},
            {"type": "http.response.pathsend", "path": "relative"},
            {"no": "type"},
        ]
    ),
)


_good_asgi_headers = st.lists(
    st.tuples(
        st.sampled_from([b"content-length", b"Content-Type", b"x-a", b"etag"]),
        st.sampled_from([b"0", b"5", b"20", b"text/plain", b'"v"']),
    ),
    max_size=3,
)


@st.composite
def asgi_scripts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly a start then body pieces (so responses happen), sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.lists(_messages, max_size=4))
    clean = draw(st.integers(0, 9)) < 6  # mostly a response that gets out
    status = draw(st.sampled_from([200, 204, 304, 404]) if clean else statuses)
    headers = draw(_good_asgi_headers if clean else response_headers)
    chunks = draw(body_chunks)
    if clean and draw(st.booleans()):  # the right length, else any (or none)
        headers = [*headers, (b"content-length", str(sum(map(len, chunks))).encode())]
    script: list[dict[str, Any]] = [
        {"type": "http.response.start", "status": status, "headers": headers}
    ]
    for i, chunk in enumerate(chunks):
        more = i < len(chunks) - 1 or draw(st.booleans())
        script.append({"type": "http.response.body", "body": chunk, "more_body": more})
    return script


async def _asgi_app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    await receive()
    for message in _current.script:
        await send(message)


_str_values = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=16),
    st.text(max_size=8),  # beyond latin-1: a server breaking PEP 3333
)
_environ_values = st.one_of(_str_values, st.integers(), st.none(), st.binary(max_size=4))


@st.composite
def environs(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(st.binary(max_size=64))
    if draw(st.integers(0, 9)) < 7:  # mostly a request the app gets to answer
        return {
            "REQUEST_METHOD": draw(st.sampled_from(["GET", "HEAD", "POST"])),
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "localhost",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(st.sampled_from(["GET", "HEAD", "POST", "", "G\nET"])),
        "SCRIPT_NAME": draw(st.sampled_from(["", "/app", "/caf\xc3\xa9"])),
        "PATH_INFO": draw(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=12)),
        "QUERY_STRING": draw(st.text(max_size=6)),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": draw(st.sampled_from(["80", "", "x", "9" * 5000, "65536"])),
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/9"])),
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": draw(st.sampled_from(["50000", "", "9" * 5000])),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": draw(st.sampled_from(["http", "https", "HTTPS", ""])),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    length = draw(
        st.one_of(st.just(str(len(body))), st.sampled_from(["", "-1", "x", "9" * 5000, " 3 "]))
    )
    if length:
        environ["CONTENT_LENGTH"] = length
    count = draw(st.sampled_from([0, 3, 99, 100, 101, 5000]))
    for i in range(count):
        environ[f"HTTP_X_H{i}"] = "v"
    for key, value in draw(
        st.lists(
            st.tuples(
                st.sampled_from(["HTTP_HOST", "HTTP_X", "HTTP_", "CONTENT_TYPE"]), _environ_values
            ),
            max_size=3,
        )
    ):
        environ[key] = value
    return environ


@pytest.fixture(scope="module")
def asgi_to_wsgi() -> Iterator[ASGIToWSGI]:
    adapter = ASGIToWSGI(
        _asgi_app, mode="inline", lifespan="off", disconnect_grace=0.5, background_timeout=0.5
    )
    yield adapter
    adapter.shutdown()


@FUZZ
@given(script=asgi_scripts(), environ=environs())
def test_asgi_to_wsgi(
    asgi_to_wsgi: ASGIToWSGI, script: list[dict[str, Any]], environ: dict[str, Any]
) -> None:
    _current.script = script
    seen: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and seen.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        seen["status"], seen["headers"] = status, headers
        return written.append

    error: BaseException | None = None
    try:
        iterable = asgi_to_wsgi(environ, start_response)
    except CrossgateError:
        # raise_app_exceptions (the default): an app that broke the spec before its response
        # started is raised from the call, and the WSGI server answers 500 itself.
        assert not written
        event("asgi_to_wsgi: raised from the call")
        return
    try:
        for chunk in iterable:
            if chunk:
                seen["sent"] = True
            written.append(chunk)
    except CrossgateError as exc:  # ResponseAborted: the server drops the connection
        error = exc
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status_line = seen["status"]
    assert isinstance(status_line, str)
    code = int(status_line[:3])
    assert 200 <= code <= 599
    assert status_line[3] == " "
    pairs = as_pairs(seen["headers"])
    check_header_pairs(pairs)
    check_framing(
        pairs,
        b"".join(written),
        status=code,
        head=environ.get("REQUEST_METHOD") == "HEAD",
        complete=error is None,
    )
    event(f"asgi_to_wsgi: {code // 100}xx{' aborted' if error else ''}")


# --- WSGIToASGI -------------------------------------------------------------------------------

_status_lines = st.one_of(
    st.sampled_from(["200 OK", "204 No Content", "304 Not Modified", "404 Not Found", "500 X"]),
    st.text(max_size=12),
    st.integers(),
)
_wsgi_headers = st.one_of(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(["Content-Length", "content-length", "Content-Type", "X-A"]),
                st.text(max_size=6),
            ),
            st.one_of(
                st.sampled_from(["0", "1", "5", "20", "-1", "9" * 5000, " 5", "a\r\nb", "\x00"]),
                st.text(max_size=8),
            ),
        ),
        max_size=5,
    ),
    st.sampled_from([None, "x", [("a",)], [(b"a", b"b")]]),
)


_good_headers = st.lists(
    st.tuples(
        st.sampled_from(["Content-Length", "content-length", "Content-Type", "X-A", "ETag"]),
        st.sampled_from(["0", "1", "5", "20", "40", "text/plain", '"v"']),
    ),
    max_size=3,
)


@st.composite
def wsgi_scripts(draw: st.DrawFn) -> dict[str, Any]:
    clean = draw(st.integers(0, 9)) < 6  # mostly a response that gets out
    return {
        "status": draw(
            st.sampled_from(["200 OK", "204 No Content", "304 Not Modified", "404 Not Found"])
            if clean
            else _status_lines
        ),
        "headers": draw(_good_headers if clean else _wsgi_headers),
        "chunks": draw(body_chunks),
        "start_twice": draw(st.booleans()) and draw(st.booleans()),
        "raise_after": draw(st.sampled_from([None, None, None, 0, 1])),
    }


def _wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    script = _current.script
    start_response(script["status"], script["headers"])
    if script["start_twice"]:
        start_response("200 OK", [])
    for i, chunk in enumerate(script["chunks"]):
        if script["raise_after"] == i:
            raise RuntimeError("the app failed mid-body")
        yield chunk


@pytest.fixture(scope="module")
def wsgi_to_asgi() -> Iterator[WSGIToASGI]:
    adapter = WSGIToASGI(_wsgi_app, workers=2)
    yield adapter
    adapter.close()


@FUZZ
@given(
    script=wsgi_scripts(),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    headers=st.one_of(st.just([(b"host", b"localhost")]), request_headers),
    client=clients,
    body=st.binary(max_size=64),
)
def test_wsgi_to_asgi(
    wsgi_to_asgi: WSGIToASGI,
    script: dict[str, Any],
    method: str,
    headers: list[tuple[bytes, bytes]],
    client: Any,
    body: bytes,
) -> None:
    _current.script = script
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    result = asyncio.run(call_http(wsgi_to_asgi, scope, body=body, timeout=10.0))
    # raise_app_exceptions (the default): the app's own exception reaches the server, after the
    # 500 or the abort; anything else must be one of crossgate's.
    own = script["raise_after"] is not None and isinstance(result.error, RuntimeError)
    assert result.error is None or own or isinstance(result.error, CrossgateError), repr(
        result.error
    )
    event(f"wsgi_to_asgi: {result.status}{' error' if result.error else ''}")
    if result.status is None:
        return  # nothing went out: the server answers 500 itself
    check_header_pairs(result.headers)
    check_framing(
        result.headers,
        result.body,
        status=result.status,
        head=method == "HEAD",
        complete=result.complete and result.error is None,
    )
