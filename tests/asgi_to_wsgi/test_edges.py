"""ASGIToWSGI's less travelled paths: odd inputs and file wrappers, late messages, shutdown
with work in flight, apps that ignore cancellation, and the process hooks."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from crossgate.adapters import asgi_to_wsgi as asgi_to_wsgi_module
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, _call
from crossgate.concurrency import _runtime
from crossgate.exceptions import ClientDisconnected, CrossgateError
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import TEXT, echo, hello, read_body, respond
from tests.asgi_to_wsgi.conftest import (
    Input,
    MakeAdapter,
    Mode,
    ignore_start,
    make_environ,
    run_wsgi,
)

WAIT = 5.0


class OddInput(Input):
    """An input that hands out a bytearray of everything it has, whatever it is asked for."""

    def read(self, size: int = -1) -> Any:
        data = self._data.read()
        self.position += len(data)
        return bytearray(data)


def test_bytearrays_and_oversized_reads_are_tamed(make_adapter: MakeAdapter) -> None:
    body = b"0123456789" * 10_000
    stream = OddInput(body + b"the next request")
    environ = make_environ("POST", body=stream, content_length=len(body))

    result = run_wsgi(make_adapter(echo, read_size=len(body)), environ, validate=False)

    # Never more than asked, so never past CONTENT_LENGTH, and always bytes for the app.
    assert result.body == body


def test_messages_after_the_response_are_ignored(make_adapter: MakeAdapter) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        await send({"type": "http.response.body", "body": b"late"})
        await send({"type": "http.response.trailers", "headers": []})

    result = run_wsgi(make_adapter(app))

    assert result.body == b"done"
    assert result.error is None


def test_send_waiting_on_back_pressure_raises_when_the_client_leaves(
    make_adapter: MakeAdapter,
) -> None:
    outcome: list[str] = []
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        try:
            while True:  # every send fills the one-byte buffer and waits for the server
                await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        except ClientDisconnected:
            outcome.append("disconnected")
        finally:
            finished.set()

    run_wsgi(make_adapter(app, send_buffer=1), stop_after=1)

    assert finished.wait(WAIT)
    assert outcome == ["disconnected"]


def test_close_before_iterating_releases_an_app_waiting_on_back_pressure(
    make_adapter: MakeAdapter,
) -> None:
    # A server may call close() without iterating at all (its client left right away).
    outcome: list[str] = []
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        try:
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
            await send({"type": "http.response.body", "body": b"y" * 1000, "more_body": True})
        except ClientDisconnected:
            outcome.append("disconnected")
        finally:
            finished.set()

    iterable = make_adapter(app, send_buffer=1)(make_environ(), ignore_start)
    close = getattr(iterable, "close", None)
    assert close is not None
    close()

    assert finished.wait(WAIT)
    assert outcome == ["disconnected"]


def test_an_app_ignoring_a_too_large_body_is_answered_after_the_grace(
    make_adapter: MakeAdapter,
) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        await asyncio.sleep(3600)  # never answers

    environ = make_environ("POST", body=Input(b"x" * 5000), extra={"wsgi.input_terminated": True})
    result = run_wsgi(make_adapter(app, max_body_size=100, disconnect_grace=0.01), environ)

    assert result.code == 413


@pytest.mark.parametrize("fails", ["first read", "later read"])
def test_a_broken_input_is_a_400(make_adapter: MakeAdapter, mode: Mode, fails: str) -> None:
    called: list[str] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        called.append("app")
        await read_body(receive)
        await respond(send, b"unreachable")

    data = b"" if fails == "first read" else b"y" * 100
    environ = make_environ(
        "POST", body=Input(data, end=OSError("broken")), extra={"wsgi.input_terminated": True}
    )
    result = run_wsgi(make_adapter(app, read_size=64, lifespan="off"), environ)

    assert result.code == 400
    # In shared mode the first piece is read before the app starts: it never runs at all.
    assert called == ([] if mode == "shared" and fails == "first read" else ["app"])


def test_body_left_unread_is_not_read_after_the_response(make_adapter: MakeAdapter) -> None:
    seen: list[Message] = []
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"early answer")
        await asyncio.sleep(0.01)  # the server finishes the response meanwhile
        try:
            _, messages = await read_body(receive)
            seen.extend(messages)
        finally:
            finished.set()

    body = b"z" * 100_000
    result = run_wsgi(
        make_adapter(app, read_size=1000),
        make_environ("POST", body=Input(body, limit=len(body)), content_length=len(body)),
    )

    assert result.body == b"early answer"
    assert finished.wait(WAIT)
    # Once the server is done with the request, its input is not read any more.
    assert seen[-1] == {"type": "http.disconnect"}


def _late_file_app(path: Path) -> Any:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await asyncio.sleep(0.01)  # the iterable is handed over before the file is named
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789abcdef" * 65536)  # 1 MiB: several blocks
    return path


def test_pathsend_after_the_iterable_went_out_reads_the_file(
    make_adapter: MakeAdapter, data_file: Path
) -> None:
    result = run_wsgi(make_adapter(_late_file_app(data_file)))

    assert result.body == data_file.read_bytes()


def test_closing_during_a_file_closes_it(
    make_adapter: MakeAdapter, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[IO[bytes]] = []

    def recording_open(path: str, mode: str) -> IO[bytes]:
        file = open(path, mode)  # noqa: SIM115 - closed by the adapter, checked below
        opened.append(file)
        return file

    # The adapter's module-level name wins over the builtin: every file it opens is seen.
    monkeypatch.setattr(_call, "open", recording_open, raising=False)
    result = run_wsgi(make_adapter(_late_file_app(data_file)), stop_after=1)

    assert len(result.chunks) == 1
    assert len(opened) == 1
    assert opened[0].closed  # run_wsgi called close() after one chunk, as a server would
    iterable: Any = result.iterable
    close = getattr(iterable, "close", None)
    assert close is not None
    close()  # a second close() is harmless (PEP 3333 does not forbid one)


class SlottedWrapper:
    """A file wrapper whose instances take no new attributes (mod_wsgi's is a C type)."""

    __slots__ = ("filelike",)

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the adapter reads the file itself")


class CloselessWrapper:
    """A file wrapper without a close() of its own."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(65536):
            yield block
        self.filelike.close()


@pytest.mark.parametrize("wrapper", [SlottedWrapper, CloselessWrapper])
def test_file_wrappers_the_adapter_cannot_hook_or_need_not(
    make_adapter: MakeAdapter, data_file: Path, wrapper: type
) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.pathsend", "path": str(data_file)})

    environ = make_environ(extra={"wsgi.file_wrapper": wrapper})
    result = run_wsgi(make_adapter(app), environ, validate=False)

    assert result.body == data_file.read_bytes()


def test_shutdown_with_a_request_in_flight_answers_it(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture
) -> None:
    # shared mode: the request's WSGI thread waits while the loop is stopped under it.
    entered = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        await asyncio.sleep(3600)

    adapter = ASGIToWSGI(app, mode="shared", lifespan="off")  # raise_app_exceptions too:
    # the adapter cancelled the app, which is not the app's exception to raise.
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(run_wsgi(adapter)))
    thread.start()
    assert entered.wait(WAIT)
    adapter.shutdown()
    thread.join(WAIT)

    assert results[0].code == 500
    assert any("cancelled before completing" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_a_task_that_ignores_cancellation_is_reported_not_destroyed(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture, mode: Mode
) -> None:
    release = asyncio.Event()

    async def stubborn(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        for _ in range(3):  # refuses the background timeout's and shutdown's cancellations
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    adapter = ASGIToWSGI(stubborn, mode=mode, background_timeout=0.01, lifespan_timeout=0.05)
    run_wsgi(adapter)
    adapter.shutdown()

    messages = [r.getMessage() for r in caplog.records]
    assert any("still running" in m and "after being cancelled" in m for m in messages)
    assert _runtime.STUCK_TASKS
    _runtime.STUCK_TASKS.clear()


def test_shutdown_during_a_request_closes_its_inline_loop_when_the_request_ends(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by Starlette's suite through the adapters: a test ended (and its adapter shut down)
    # while close() still ran the app's work after the response, and the thread's loop was
    # never closed: asyncio warned "unclosed event loop" in whatever test collected it.
    in_close = threading.Event()
    release = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        loops.append(asyncio.get_running_loop())
        await respond(send, b"done")
        in_close.set()  # the response is complete: what follows runs in close()
        while not release.is_set():
            await asyncio.sleep(0.01)

    adapter = ASGIToWSGI(app, mode="inline", lifespan="off")
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(run_wsgi(adapter)))
    thread.start()
    assert in_close.wait(WAIT)
    adapter.shutdown()  # the loop is running on the request's thread
    assert not loops[0].is_closed()
    release.set()
    thread.join(WAIT)

    assert results[0].body == b"done"
    assert loops[0].is_closed()
    assert any("closing it when that request ends" in r.getMessage() for r in caplog.records)


def test_loops_of_threads_that_ended_are_closed(thread_leak_check: None) -> None:
    adapter = ASGIToWSGI(hello, mode="inline", lifespan="off")
    for _ in range(2):
        thread = threading.Thread(target=run_wsgi, args=(adapter,))
        thread.start()
        thread.join(WAIT)
    process = adapter._process
    assert process is not None
    assert process.thread is None

    # The second thread's loop was made after the first thread had ended: that one is closed.
    assert len(process.all()) == 1
    adapter.shutdown()
    _runtime.finish_loop(asyncio.new_event_loop(), 1.0)  # and a loop can be finished at once


def test_shutdown_does_not_wait_for_a_thread_the_app_left_blocked(
    thread_leak_check: None,
) -> None:
    gate = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        await asyncio.to_thread(gate.wait)  # blocked until the test is past shutdown()

    adapter = ASGIToWSGI(app, mode="inline", lifespan_timeout=0.05, background_timeout=3600)
    iterable = adapter(make_environ(), ignore_start)
    assert b"".join(iterable) == b"done"  # close() is never called: the work stays pending
    # Were shutdown to join the loop's executor threads, it would wait here for ever (until
    # the per-test timeout fails the test): only the next line unblocks the thread.
    adapter.shutdown()
    gate.set()


def test_startup_from_a_running_loop_in_inline_mode_is_refused(thread_leak_check: None) -> None:
    adapter = ASGIToWSGI(hello, mode="inline")

    async def main() -> None:
        with pytest.raises(CrossgateError, match="running an event loop"):
            adapter.startup()

    asyncio.run(main())
    assert adapter._process is None


@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_shutdown_from_the_app_itself_is_refused(thread_leak_check: None, mode: Mode) -> None:
    errors: list[BaseException] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        try:
            adapter.shutdown()
        except CrossgateError as exc:
            errors.append(exc)
        await respond(send, b"still here")

    adapter = ASGIToWSGI(app, mode=mode, lifespan="off")
    result = run_wsgi(adapter)
    adapter.shutdown()

    assert result.body == b"still here"
    assert len(errors) == 1
    assert "another thread" in str(errors[0])


def test_the_fork_hook_gives_every_adapter_a_fresh_lock(thread_leak_check: None) -> None:
    adapter = ASGIToWSGI(hello)
    held = adapter._lock
    held.acquire()  # as another thread of the parent might hold it at fork()
    try:
        asgi_to_wsgi_module._after_fork_in_child()
    finally:
        held.release()

    assert adapter._lock is not held
    assert not adapter._lock.locked()


def test_a_failing_shutdown_at_exit_is_logged(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = ASGIToWSGI(hello)

    def broken() -> None:
        raise RuntimeError("cannot shut down")

    monkeypatch.setattr(adapter, "shutdown", broken)
    asgi_to_wsgi_module._shutdown_all()

    assert any(
        r.getMessage() == "ASGIToWSGI shutdown at exit failed" and r.levelno == logging.ERROR
        for r in caplog.records
    )
