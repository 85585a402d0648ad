"""Views of the Django test project; each mirrors a view of ``tests/servers/flask_app.py``."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from tests.servers._rendezvous import (
    BARRIER,
    GATES,
    PROGRESS,
    UPLOAD_CHUNK,
    server_log,
)


@require_safe  # GET and HEAD
def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain")


@csrf_exempt
@require_POST
def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.POST['name']}", content_type="text/plain")


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    # request.read() pulls from wsgi.input in pieces; request.body would hold the whole body
    # (and refuse anything over DATA_UPLOAD_MAX_MEMORY_SIZE).
    token = request.GET.get("token", "")
    digest = hashlib.sha256()
    length = 0
    try:
        while chunk := request.read(UPLOAD_CHUNK):
            digest.update(chunk)
            length += len(chunk)
            PROGRESS.add(token, len(chunk))
    except Exception as exc:
        # A client that leaves mid-body must show up as an error from read(), never as an
        # early end of the body: the app would otherwise act on a truncated upload.
        server_log(f"upload-aborted token={token} after={length} error={type(exc).__name__}")
        raise
    server_log(f"upload-complete token={token} length={length}")
    return JsonResponse({"length": length, "sha256": digest.hexdigest()})


@require_GET
def progress(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"read": PROGRESS.read(request.GET.get("token", ""))})


@require_GET
def stream(request: HttpRequest) -> StreamingHttpResponse:
    token = request.GET["token"]
    chunks = int(request.GET.get("chunks", "5"))

    def body() -> Iterator[bytes]:
        yield b"head\n"
        # The tail waits until the client has the head (see tests/servers/_rendezvous.py).
        if not GATES.wait(token):
            yield b"gate-timeout\n"
            return
        for number in range(1, chunks):
            yield f"chunk {number}\n".encode()

    return StreamingHttpResponse(body(), content_type="text/plain")


@csrf_exempt
@require_POST
def release(request: HttpRequest) -> HttpResponse:
    GATES.release(request.GET["token"])
    return HttpResponse("released", content_type="text/plain")


@require_GET
def sse(request: HttpRequest) -> StreamingHttpResponse:
    token = request.GET["token"]

    def events() -> Iterator[bytes]:
        number = 0
        try:
            while True:
                yield f"data: tick {number}\n\n".encode()
                number += 1
                time.sleep(0.1)
        finally:
            # StreamingHttpResponse.close() closes this generator when the adapter closes the
            # response (PEP 3333); the test reads this line from the server log.
            server_log(f"sse-closed token={token} thread={threading.current_thread().name}")

    return StreamingHttpResponse(events(), content_type="text/event-stream")


@require_GET
def barrier(request: HttpRequest) -> HttpResponse:
    try:
        BARRIER.wait()
    except threading.BrokenBarrierError:
        # Fewer than BARRIER_PARTIES requests ran at once: the adapter serialised them.
        return HttpResponse("barrier broken", status=500, content_type="text/plain")
    return HttpResponse("barrier passed", content_type="text/plain")


@require_GET
def where(request: HttpRequest) -> JsonResponse:
    # request.META holds the environ as the adapter built it; request.path_info is Django's
    # re-percent-encoded copy, which would hide what the adapter did.
    return JsonResponse(
        {"path_info": request.META["PATH_INFO"], "script_name": request.META["SCRIPT_NAME"]}
    )
