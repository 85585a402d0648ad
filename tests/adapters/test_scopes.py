"""WSGIToASGI beyond plain HTTP: files, lifespan, websockets, unknown scopes, bad requests."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from crossgate import CrossgateError
from crossgate.testing import call_http, call_lifespan, call_websocket, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import CountingApp, MakeAdapter, run

PATHSEND: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
ZEROCOPY: dict[str, dict[object, object]] = {"http.response.zerocopysend": {}}


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return path


def file_app(path: Path, opened: list[Any], **headers: str) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *headers.items()])
        handle = path.open("rb")
        opened.append(handle)
        return environ["wsgi.file_wrapper"](handle, 4096)  # type: ignore[no-any-return]

    return app


def test_file_goes_out_through_pathsend(make_adapter: MakeAdapter, data_file: Path) -> None:
    opened: list[Any] = []
    adapter = make_adapter(file_app(data_file, opened), validate=False)
    result = run(lambda: call_http(adapter, http_scope(extensions=PATHSEND)))
    assert [m["type"] for m in result.messages] == [
        "http.response.start",
        "http.response.pathsend",
    ]
    assert result.messages[1]["path"] == str(data_file.resolve())
    assert result.header("content-length") == str(1024 * 1024)
    assert opened[0].closed, "close() must close the file after the server took it"


def test_file_goes_out_through_zerocopysend(make_adapter: MakeAdapter, data_file: Path) -> None:
    opened: list[Any] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        handle = data_file.open("rb")
        handle.seek(1000)  # a range response: zerocopysend carries the offset
        opened.append(handle)
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    result = run(lambda: call_http(adapter, http_scope(extensions=ZEROCOPY)))
    event = result.messages[1]
    assert event["type"] == "http.response.zerocopysend"
    assert event["offset"] == 1000
    assert event["count"] == 1024 * 1024 - 1000
    assert event["file"] is opened[0]
    assert result.header("content-length") == str(1024 * 1024 - 1000)
    assert opened[0].closed


def test_file_without_extension_is_read_in_large_blocks(
    make_adapter: MakeAdapter, data_file: Path
) -> None:
    opened: list[Any] = []
    adapter = make_adapter(file_app(data_file, opened))
    result = run(lambda: call_http(adapter))
    assert result.body == data_file.read_bytes()
    bodies = [m for m in result.messages if m["type"] == "http.response.body"]
    # 1 MiB in blocks of at least 256 KiB, not the 4 KiB the app asked for.
    assert len(bodies) <= 5
    assert opened[0].closed


@pytest.mark.parametrize(
    "case", ["not a real file", "content-length mismatch", "HEAD", "pathsend needs offset 0"]
)
def test_file_falls_back_to_iteration(
    make_adapter: MakeAdapter, data_file: Path, case: str
) -> None:
    extensions = dict(PATHSEND)
    method = "GET"
    headers: list[tuple[str, str]] = []
    if case == "content-length mismatch":
        headers.append(("Content-Length", "10"))
    if case == "HEAD":
        method = "HEAD"

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        handle: Any
        if case == "not a real file":
            handle = io.BytesIO(b"in memory")
        else:
            handle = data_file.open("rb")
            if case == "pathsend needs offset 0":
                handle.seek(5)
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    result = run(lambda: call_http(adapter, http_scope(method, extensions=extensions)))
    kinds = {m["type"] for m in result.messages}
    assert "http.response.pathsend" not in kinds
    expected = {
        "not a real file": b"in memory",
        "content-length mismatch": data_file.read_bytes()[:10],
        "HEAD": data_file.read_bytes(),  # the server drops a HEAD body, not the app
        "pathsend needs offset 0": data_file.read_bytes()[5:],
    }[case]
    assert result.body == expected


def test_pathsend_refused_for_a_deleted_file(make_adapter: MakeAdapter, data_file: Path) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        handle = data_file.open("rb")
        data_file.unlink()  # no name reaches the open file any more
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    result = run(lambda: call_http(adapter, http_scope(extensions=PATHSEND)))
    assert "http.response.pathsend" not in {m["type"] for m in result.messages}
    assert len(result.body) == 1024 * 1024


def test_pathsend_names_the_open_file_never_a_replacement(
    make_adapter: MakeAdapter, data_file: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved.bin"

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        handle = data_file.open("rb")
        os.replace(data_file, moved)
        data_file.write_bytes(b"another file now has the old name")
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    result = run(lambda: call_http(adapter, http_scope(extensions=PATHSEND)))
    sent = result.messages[1]
    assert sent["type"] == "http.response.pathsend"
    assert sent["path"] == str(moved.resolve()), "the file that was opened, under its new name"


class StorageFile:
    """Shaped like Django's ``FieldFile``: ``name`` is relative to the storage, not to the
    working directory, and the real file object is ``file``."""

    def __init__(self, storage_name: str, file: Any) -> None:
        self.name = storage_name
        self.file = file

    def fileno(self) -> int:
        return int(self.file.fileno())

    def tell(self) -> int:
        return int(self.file.tell())

    def read(self, size: int = -1) -> bytes:
        return bytes(self.file.read(size))

    def close(self) -> None:
        self.file.close()


def test_pathsend_finds_the_real_path_of_a_storage_file(
    make_adapter: MakeAdapter, data_file: Path
) -> None:
    opened: list[Any] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = StorageFile("attachments/report.bin", data_file.open("rb"))
        opened.append(handle.file)
        return environ["wsgi.file_wrapper"](handle)  # type: ignore[no-any-return]

    adapter = make_adapter(app, validate=False)
    result = run(lambda: call_http(adapter, http_scope(extensions=PATHSEND)))
    assert [m["type"] for m in result.messages] == [
        "http.response.start",
        "http.response.pathsend",
    ]
    assert result.messages[1]["path"] == str(data_file.resolve())
    assert opened[0].closed


def test_lifespan_runs_hooks(make_adapter: MakeAdapter) -> None:
    calls: list[str] = []

    async def async_start() -> None:
        calls.append("async start")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(
        app,
        on_startup=[lambda: calls.append("sync start"), async_start],
        on_shutdown=[lambda: calls.append("stop")],
    )
    result = run(lambda: call_lifespan(adapter))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["sync start", "async start", "stop"]


def test_lifespan_failures_are_reported(make_adapter: MakeAdapter) -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    failing_start = make_adapter(app, on_startup=[broken])
    result = run(lambda: call_lifespan(failing_start))
    assert result.types == ["lifespan.startup.failed"]
    assert "no database" in result.messages[0]["message"]

    failing_stop = make_adapter(app, on_shutdown=[broken])
    result = run(lambda: call_lifespan(failing_stop))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]


def test_every_shutdown_hook_runs_and_every_failure_is_reported(make_adapter: MakeAdapter) -> None:
    # The one hook rule, the routers' too: each shutdown hook may hold its own resource.
    calls: list[str] = []

    def broken(name: str) -> Callable[[], None]:
        def hook() -> None:
            calls.append(name)
            raise RuntimeError(f"{name} broke")

        return hook

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app, on_shutdown=[broken("first"), broken("second")])
    result = run(lambda: call_lifespan(adapter))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert calls == ["first", "second"]
    assert "first broke" in result.messages[1]["message"]
    assert "second broke" in result.messages[1]["message"]


def test_websocket_refused_with_403_through_the_extension(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise AssertionError("a websocket must never reach the WSGI app")

    adapter = make_adapter(app)
    scope = http_scope(type="websocket", extensions={"websocket.http.response": {}})
    sent = run(lambda: call_websocket(adapter, scope))
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert b"WSGI application" in sent[1]["body"]


def test_websocket_closed_before_accept_without_the_extension(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise AssertionError("a websocket must never reach the WSGI app")

    sent = run(lambda: call_websocket(make_adapter(app)))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert "WSGI" in sent[0]["reason"]


def test_unknown_scope_type_raises(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise AssertionError("unreachable")

    adapter = make_adapter(app)

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            raise AssertionError("unreachable")

        async def send(message: Any) -> None:
            raise AssertionError("unreachable")

        with pytest.raises(CrossgateError, match="'webtransport'"):
            await adapter({"type": "webtransport"}, receive, send)

    run(main)


def test_too_many_headers_answer_431_before_the_app_runs(make_adapter: MakeAdapter) -> None:
    app = CountingApp()
    adapter = make_adapter(app, max_headers=10)
    headers = [(b"x-many", str(i).encode()) for i in range(20)]
    result = run(lambda: call_http(adapter, http_scope(headers=headers)))
    assert result.status == 431
    assert app.calls == 0


def test_environ_seen_by_the_app(make_adapter: MakeAdapter) -> None:
    seen: dict[str, Any] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app, multiprocess=True)
    scope = http_scope(
        "GET",
        "/app/caf\u00e9",
        raw_path=b"/app/caf%C3%A9%FF",
        root_path="/app",
        query_string=b"q=1",
        headers=[(b"x_under", b"spoof"), (b"x-under", b"real"), (b"cookie", b"a=1")],
    )
    run(lambda: call_http(adapter, scope))
    assert seen["SCRIPT_NAME"] == "/app"
    assert seen["PATH_INFO"] == "/caf\xc3\xa9\xff"
    assert seen["REQUEST_URI"] == "/app/caf%C3%A9%FF?q=1"
    assert seen["HTTP_X_UNDER"] == "real"
    assert seen["wsgi.multiprocess"] is True
    assert seen["wsgi.multithread"] is True
    assert seen["SERVER_PORT"] == "8000"
