"""WSGIToASGI responses: when headers go out, exc_info, write(), Content-Length, close()."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest

from crossgate import AppProtocolError, ResponseAborted
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import MakeAdapter, run

TEXT = [("Content-Type", "text/plain")]


class Closing:
    """An iterable that records how often close() ran and how far it was iterated."""

    def __init__(self, chunks: Iterable[bytes], fail_at: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.closed = 0
        self.yielded = 0

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError("boom in the iterable")
            self.yielded += 1
            yield chunk

    def close(self) -> None:
        self.closed += 1


def test_hello_through_httpx(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        return [b"hello"]

    adapter = make_adapter(app)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=adapter)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/")

    response = run(main)
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-type"] == "text/plain"


def test_headers_wait_for_the_first_non_empty_chunk(make_adapter: MakeAdapter) -> None:
    # PEP 3333: headers go out with the first non-empty chunk. An app that fails after
    # yielding only empty strings must still be able to send a 500, not a broken 200.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        yield b""
        raise RuntimeError("failed before any body")

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 500
    assert result.header("content-type") == "text/plain; charset=utf-8"
    assert b"boom" not in result.body


def test_empty_body_204(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return []

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 204
    assert result.body == b""
    assert result.complete
    # One start and one final body message: the start rides with the end of the body.
    assert [m["type"] for m in result.messages] == ["http.response.start", "http.response.body"]


def test_exc_info_replaces_status_before_headers_went_out(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("handled by the app's error page")
        except ValueError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 503
    assert result.body == b"sorry"


def test_exc_info_after_headers_went_out_is_reraised_and_aborts(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[BaseException] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        yield b"partial"
        try:
            raise KeyError("late failure")
        except KeyError:
            try:
                start_response("500 Internal Server Error", TEXT, sys.exc_info())
            except KeyError as exc:
                seen.append(exc)
                raise

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        adapter = make_adapter(app, send_buffer=1, raise_app_exceptions=False)
        result = run(lambda: call_http(adapter))
    assert seen
    assert isinstance(seen[0], KeyError)
    assert result.status == 200
    assert not result.complete
    assert isinstance(result.error, ResponseAborted)
    assert isinstance(result.error.__cause__, KeyError)
    assert "after the response headers were sent; the connection was aborted" in caplog.text


def test_write_callable(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"one ")
        write(b"")
        write(b"two ")
        return [b"three"]

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 200
    assert result.body == b"one two three"


def test_write_rejects_str(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", TEXT)
        write("text")  # type: ignore[arg-type]
        return []

    # Not validated: the validator would reject the str itself.
    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 500


def test_content_length_surplus_dropped_and_iteration_stopped(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    body = Closing([b"12345", b"67890", b"never"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "7")])
        return body

    with caplog.at_level(logging.WARNING, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 200
    assert result.body == b"1234567"
    assert result.complete
    assert body.yielded == 2, "iteration must stop once Content-Length bytes went out"
    assert body.closed == 1
    assert "past its Content-Length" in caplog.text


def test_content_length_shortfall_before_headers_is_a_500(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        return []

    result = run(lambda: call_http(make_adapter(app)))
    assert result.status == 500


def test_content_length_shortfall_after_headers_aborts(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        return [b"abc"]

    # send_buffer=1 makes the worker wait until the loop has taken the headers, so they are
    # on their way to the client when the shortfall is found: an AppProtocolError, raised
    # to the server (which aborts the connection), or ResponseAborted without raising.
    result = run(lambda: call_http(make_adapter(app, send_buffer=1)))
    assert result.status == 200
    assert not result.complete
    assert isinstance(result.error, AppProtocolError)
    assert "3 bytes fewer than its Content-Length" not in str(result.error)
    assert "7 bytes fewer than its Content-Length" in str(result.error)
    kept = run(lambda: call_http(make_adapter(app, send_buffer=1, raise_app_exceptions=False)))
    assert isinstance(kept.error, ResponseAborted)


def test_failure_before_headers_left_the_process_is_still_a_500(
    make_adapter: MakeAdapter,
) -> None:
    # With a large send buffer the worker runs to the end before the loop wakes: the
    # headers were committed by the app but never sent, so the client gets a clean 500.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        return [b"abc"]

    async def main() -> HTTPResult:
        adapter = make_adapter(app)
        results = [await call_http(adapter) for _ in range(20)]
        return next((r for r in results if r.status == 500), results[0])

    result = run(main)
    assert result.status in (200, 500)
    if result.status == 200:
        assert isinstance(result.error, ResponseAborted)
    else:
        assert result.complete


def test_head_keeps_content_length_without_body(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "1000")])
        return []

    result = run(lambda: call_http(make_adapter(app), http_scope("HEAD")))
    assert result.status == 200
    assert result.header("content-length") == "1000"
    assert result.complete


def test_start_response_never_called_is_a_logged_500(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return [b"no status"]

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        adapter = make_adapter(app, validate=False, raise_app_exceptions=False)
        result = run(lambda: call_http(adapter))
    assert result.status == 500
    assert "without calling start_response" in caplog.text


def test_start_response_never_called_with_empty_body(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return []

    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 500


@pytest.mark.parametrize(
    "status",
    ["200", "OK 200", "200 OK\r\nX-Injected: 1", "99 Low"],
)
def test_invalid_status_is_a_500(make_adapter: MakeAdapter, status: str) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, TEXT)
        return [b"x"]

    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 500


def test_header_injection_is_refused(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Location", "/ok\r\nSet-Cookie: admin=1")])
        return [b"x"]

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        adapter = make_adapter(app, validate=False, raise_app_exceptions=False)
        result = run(lambda: call_http(adapter))
    assert result.status == 500
    assert result.header("set-cookie") is None
    assert "header injection" in caplog.text


def test_second_start_response_without_exc_info_is_an_error(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        start_response("404 Not Found", TEXT)
        return [b"x"]

    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 500


def _close_cases() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("complete", {}),
        ("fails before headers", {"fail_at": 0}),
        ("fails after headers", {"fail_at": 2}),
        ("client leaves", {"disconnect_after_bytes": 1}),
    ]


@pytest.mark.parametrize(("case", "options"), _close_cases(), ids=[c for c, _ in _close_cases()])
def test_close_called_exactly_once(
    make_adapter: MakeAdapter, case: str, options: dict[str, Any]
) -> None:
    body = Closing([b"a", b"b", b"c", b"d"], fail_at=options.get("fail_at"))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return body

    async def main() -> HTTPResult:
        return await call_http(
            make_adapter(app, validate=False, send_buffer=1),
            disconnect_after_bytes=options.get("disconnect_after_bytes"),
        )

    run(main)
    assert body.closed == 1


class _BadClose(Closing):
    def close(self) -> None:
        raise OSError("close failed")


def _bad_close_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return _BadClose([b"x"])


def test_close_raising_after_a_complete_body_sends_it_then_raises(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    # close() is the app's (PEP 3333): what it raises after a complete body is the app's
    # exception after a complete response. The client gets the whole response, then the
    # server sees the exception (the ASGI convention).
    with caplog.at_level(logging.INFO, logger="crossgate"):
        result = run(lambda: call_http(make_adapter(_bad_close_app, validate=False)))
    assert result.complete
    assert result.body == b"x"
    assert isinstance(result.error, OSError)
    assert "after its response was complete" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_close_raising_is_logged_with_the_option_off(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(_bad_close_app, validate=False, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="crossgate"):
        result = run(lambda: call_http(adapter))
    assert "after its response was complete" in caplog.text
    assert result.error is None
    assert result.complete
    assert result.body == b"x"


def test_exception_before_headers_gives_plain_500_and_logs_traceback(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise ZeroDivisionError("secret detail")

    adapter = make_adapter(app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="crossgate"):
        result = run(lambda: call_http(adapter))
    assert result.status == 500
    assert result.body == b"500 Internal Server Error\n"
    assert b"secret" not in result.body
    assert result.error is None
    record = next(r for r in caplog.records if r.exc_info)
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_server_keeps_serving_after_errors(make_adapter: MakeAdapter) -> None:
    calls = 0

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal calls
        calls += 1
        if environ["PATH_INFO"] == "/fail":
            start_response("200 OK", TEXT)
            return Closing([b"x", b"y"], fail_at=1)
        start_response("200 OK", TEXT)
        return [b"fine"]

    # send_buffer=1: the headers are taken by the loop before the failure, so it aborts.
    adapter = make_adapter(app, send_buffer=1)

    async def main() -> list[HTTPResult]:
        return [
            await call_http(adapter, http_scope(path=path))
            for path in ("/fail", "/ok", "/fail", "/ok")
        ]

    results = run(main)
    assert [r.complete for r in results] == [False, True, False, True]
    assert results[1].body == b"fine"
    assert calls == 4


def test_wsgi_errors_goes_to_the_crossgate_logger(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["part\n", "tail without newline"])
        start_response("200 OK", TEXT)
        return [b"ok"]

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        run(lambda: call_http(make_adapter(app)))
    messages = [r.getMessage() for r in caplog.records if r.name == "crossgate"]
    assert messages == [
        "wsgi.errors: first line",
        "wsgi.errors: second part",
        "wsgi.errors: tail without newline",
    ]


def test_header_values_are_trimmed_for_django_cookies(make_adapter: MakeAdapter) -> None:
    # Django renders cookies as " name=value"; h11 (uvicorn, hypercorn) refuses a value with
    # leading whitespace, so the adapter trims it (RFC 9110 section 5.5).
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Set-Cookie", " csrftoken=abc; Path=/")])
        return [b"ok"]

    result = run(lambda: call_http(make_adapter(app)))
    assert result.header("set-cookie") == "csrftoken=abc; Path=/"


def test_exc_info_by_keyword(make_adapter: MakeAdapter) -> None:
    # gunicorn and wsgiref accept exc_info as a keyword; so must we. (typeshed's StartResponse
    # declares it positional-only, hence Any.)
    def app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("x")
        except ValueError:
            start_response("500 Internal Server Error", TEXT, exc_info=sys.exc_info())
        return [b"error page"]

    # Not validated: wsgiref's validator wrapper takes exc_info positionally only.
    result = run(lambda: call_http(make_adapter(app, validate=False)))
    assert result.status == 500
    assert result.body == b"error page"
