"""Issue 19 on the `ASGIToWSGI` side: the app's Content-Length is kept, headers are capped.

* Item 2: an app that declares a ``Content-Length`` and sends more gets its body clamped (and a
  warning); invalid or conflicting declarations get a 500 before any header goes out. Under
  ``wsgiref``, which sends whatever it is given, the surplus would otherwise read as the start of
  the next response.
* Item 5: more than 100 request headers get the 431 `WSGIToASGI` gives (one rule, in
  `crossgate.sansio.headers`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from crossgate.exceptions import AppProtocolError, ResponseAborted
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS
from crossgate.types import ASGIReceive, ASGISend
from tests.asgi_to_wsgi.conftest import MakeAdapter, Mode, make_environ, run_wsgi, wait_until
from tests.asgi_to_wsgi.test_wsgiref import TIMEOUT, Served


def declaring(headers: list[tuple[bytes, bytes]], *chunks: bytes) -> Any:
    """An ASGI app that answers 200 with ``headers`` and sends ``chunks`` as the body.

    A Content-Type is added: `wsgiref.validate` requires one.
    """
    headers = [(b"content-type", b"application/octet-stream"), *headers]

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")  # lifespan "auto": taken as unsupported
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


# --- item 2: Content-Length ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "chunks", "body"),
    [
        (b"0", (b"\x00",), b""),  # the fuzz minimum of issue 19
        (b"5", (b"x" * 20,), b"xxxxx"),
        (b"5", (b"abc", b"defgh", b"ijk"), b"abcde"),
        (b"3", (b"abc", b"more", b""), b"abc"),
    ],
)
def test_body_past_the_declared_length_is_dropped(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    length: bytes,
    chunks: tuple[bytes, ...],
    body: bytes,
) -> None:
    app = declaring([(b"content-length", length)], *chunks)
    warning = f"bytes past its Content-Length of {length.decode()}; dropped them"
    with caplog.at_level(logging.WARNING, logger="crossgate"):
        result = run_wsgi(make_adapter(app))
        # In shared mode the app's later sends run on the loop thread, maybe after the WSGI
        # side is done: a bounded wait, never a timing assertion.
        assert wait_until(lambda: any(warning in r.getMessage() for r in caplog.records))
    assert result.error is None
    assert (result.code, result.body) == (200, body)
    assert result.header("content-length") == length.decode()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"1"), (b"content-length", b"0")],  # the conflicting pair
        [(b"Content-Length", b"20"), (b"content-length", b"21")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"1e3")],
        [(b"content-length", b"")],
        [(b"content-length", b"9" * 5000)],
    ],
)
def test_invalid_or_conflicting_length_is_a_500(
    make_adapter: MakeAdapter, headers: list[tuple[bytes, bytes]]
) -> None:
    app = declaring(headers, b"x" * 20)
    result = run_wsgi(make_adapter(app, raise_app_exceptions=False))
    assert result.code == 500
    assert [status for status, _ in result.start_calls] == ["500 Internal Server Error"]
    assert result.header("content-length") == str(len(result.body))


def test_a_conflicting_length_reaches_the_server_by_default(make_adapter: MakeAdapter) -> None:
    # raise_app_exceptions: the app broke the spec before any header went out, so the error is
    # raised from the application call and the WSGI server answers 500 itself.
    headers = [(b"content-length", b"1"), (b"content-length", b"0")]
    result = run_wsgi(make_adapter(declaring(headers, b"x" * 20)), catch_call=True)
    assert isinstance(result.call_error, AppProtocolError)
    assert "conflicting Content-Length" in str(result.call_error)
    assert result.start_calls == []


def test_identical_repeated_lengths_are_kept(make_adapter: MakeAdapter) -> None:
    headers = [(b"content-length", b"2"), (b"content-length", b"2")]
    result = run_wsgi(make_adapter(declaring(headers, b"okay")))
    assert (result.code, result.body) == (200, b"ok")


def _raw_exchange(served: Served, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):  # wsgiref closes the connection after one response
            received += chunk
    return received


@pytest.fixture
def wsgiref_serve(thread_leak_check: None, mode: Mode) -> Iterator[Any]:
    from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI

    started: list[Served] = []

    def start(app: Any) -> Served:
        served = Served(ASGIToWSGI(app, mode=mode))
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.mark.parametrize(
    ("headers", "status", "length"),
    [
        ([(b"content-length", b"0")], b"200", 0),
        ([(b"content-length", b"1"), (b"content-length", b"0")], b"500", None),
    ],
)
def test_wsgiref_sends_exactly_one_response_of_the_declared_length(
    wsgiref_serve: Any, headers: list[tuple[bytes, bytes]], status: bytes, length: int | None
) -> None:
    # wsgiref passes on whatever the app gives it, so here the bytes on the wire are the
    # adapter's: exactly one status line, and a body exactly as long as the one Content-Length.
    served = wsgiref_serve(declaring(headers, b"\x00" * 20))
    raw = _raw_exchange(served, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep
    lines = head.split(b"\r\n")
    assert lines[0].split(b" ")[1] == status
    declared = [
        line.split(b":", 1)[1].strip()
        for line in lines
        if line.lower().startswith(b"content-length:")
    ]
    assert len(declared) == 1
    assert len(body) == int(declared[0])
    if length is not None:
        assert int(declared[0]) == length
    assert raw.count(b"HTTP/1.") == 1


# --- item 5: the header-count cap ------------------------------------------------------------


def _environ_with(count: int) -> dict[str, Any]:
    # setup_testing_defaults adds HTTP_HOST: count - 1 more.
    return make_environ(headers={f"x-h{i}": "v" for i in range(count - 1)})


def test_more_headers_than_the_cap_get_a_431(make_adapter: MakeAdapter) -> None:
    called: list[object] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            called.append(scope)

    result = run_wsgi(make_adapter(app), _environ_with(DEFAULT_MAX_HEADERS + 1))
    assert result.code == 431
    assert called == []


def test_a_flood_of_headers_gets_a_431(make_adapter: MakeAdapter) -> None:
    # 100,000 headers: the scope is never built (the count stops at the cap).
    result = run_wsgi(make_adapter(declaring([], b"")), _environ_with(100_000))
    assert result.code == 431


def test_headers_up_to_the_cap_are_served(make_adapter: MakeAdapter) -> None:
    seen: list[int] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")
        seen.append(len(scope["headers"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    result = run_wsgi(make_adapter(app), _environ_with(DEFAULT_MAX_HEADERS))
    assert result.code == 204
    assert seen == [DEFAULT_MAX_HEADERS]


@pytest.mark.parametrize("cap", [None, 200_000])
def test_the_cap_is_an_option(make_adapter: MakeAdapter, cap: int | None) -> None:
    result = run_wsgi(
        make_adapter(declaring([], b""), max_headers=cap), _environ_with(DEFAULT_MAX_HEADERS + 50)
    )
    assert result.code == 200


def test_a_body_short_of_its_length_is_a_500(make_adapter: MakeAdapter) -> None:
    # The client would wait for the missing bytes (RFC 9112 section 6.3): as in WSGIToASGI,
    # a body that ends short is the app's error.
    app = declaring([(b"content-length", b"10")], b"abc")
    result = run_wsgi(make_adapter(app, raise_app_exceptions=False))
    assert result.code == 500
    # By default the app's error reaches the server instead, raised from the iterable before
    # any body byte went out (so the WSGI server can still answer 500).
    result = run_wsgi(make_adapter(app))
    assert isinstance(result.error, AppProtocolError)
    assert result.chunks == []


def test_a_body_short_of_its_length_after_bytes_went_out_aborts(
    make_adapter: MakeAdapter,
) -> None:
    app = declaring([(b"content-length", b"10")], b"abc", b"de")
    result = run_wsgi(make_adapter(app, raise_app_exceptions=False))
    assert isinstance(result.error, ResponseAborted)
    assert result.body == b"abc"
    # By default the app's error is raised from the iterable once headers went out.
    result = run_wsgi(make_adapter(app))
    assert isinstance(result.error, AppProtocolError)
    assert result.body == b"abc"


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 304), ("GET", 204)])
def test_head_204_and_304_keep_a_length_without_a_body(
    make_adapter: MakeAdapter, method: str, status: int
) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"10")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    result = run_wsgi(make_adapter(app), validate=status == 200, method=method)
    assert result.code == status
    assert result.body == b""
