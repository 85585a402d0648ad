"""The Flask application the server tests serve through crossgate (see ``flask_asgi.py``).

Each view exercises one adapter behaviour over a real socket; ``_rendezvous`` explains how the
views prove concurrency and streaming without the tests measuring time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request

from tests.servers._rendezvous import (
    BARRIER,
    GATES,
    PROGRESS,
    UPLOAD_CHUNK,
    server_log,
)

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from flask"


@app.post("/form")
def form() -> str:
    return f"hello {request.form['name']}"


@app.post("/upload")
def upload() -> Response:
    # request.stream is wsgi.input itself (crossgate sets wsgi.input_terminated), read in fixed
    # pieces so the app holds one piece at a time, never the whole body.
    token = request.args.get("token", "")
    digest = hashlib.sha256()
    length = 0
    try:
        while chunk := request.stream.read(UPLOAD_CHUNK):
            digest.update(chunk)
            length += len(chunk)
            PROGRESS.add(token, len(chunk))
    except Exception as exc:
        # A client that leaves mid-body must show up as an error from read(), never as an
        # early end of the body: the app would otherwise act on a truncated upload.
        server_log(f"upload-aborted token={token} after={length} error={type(exc).__name__}")
        raise
    server_log(f"upload-complete token={token} length={length}")
    return jsonify(length=length, sha256=digest.hexdigest())


@app.get("/progress")
def progress() -> Response:
    return jsonify(read=PROGRESS.read(request.args.get("token", "")))


@app.get("/stream")
def stream() -> Response:
    token = request.args["token"]
    chunks = int(request.args.get("chunks", "5"))

    def body() -> Iterator[bytes]:
        yield b"head\n"
        # The tail waits for the client to say it has the head: the head must have left the
        # server while this generator was still running.
        if not GATES.wait(token):
            yield b"gate-timeout\n"
            return
        for number in range(1, chunks):
            yield f"chunk {number}\n".encode()

    return Response(body(), mimetype="text/plain")


@app.post("/release")
def release() -> str:
    GATES.release(request.args["token"])
    return "released"


@app.get("/sse")
def sse() -> Response:
    token = request.args["token"]

    def events() -> Iterator[bytes]:
        number = 0
        try:
            while True:
                yield f"data: tick {number}\n\n".encode()
                number += 1
                time.sleep(0.1)
        finally:
            # Runs when the adapter calls close() on the iterable (PEP 3333): the proof, read
            # from the server log, that a client leaving stops an endless response.
            server_log(f"sse-closed token={token} thread={threading.current_thread().name}")

    return Response(events(), mimetype="text/event-stream")


@app.get("/barrier")
def barrier() -> tuple[str, int]:
    try:
        BARRIER.wait()
    except threading.BrokenBarrierError:
        # Fewer than BARRIER_PARTIES requests ran at once: the adapter serialised them.
        return "barrier broken", 500
    return "barrier passed", 200


@app.get("/where/", defaults={"rest": ""})
@app.get("/where/<path:rest>")
def where(rest: str) -> Response:
    # The raw environ values, not Flask's decoded view of them: the test checks what the
    # adapter put in the environ (PEP 3333, "Unicode Issues").
    return jsonify(
        path_info=request.environ["PATH_INFO"], script_name=request.environ["SCRIPT_NAME"]
    )
