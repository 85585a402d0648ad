"""Smoke test of an installed crossgate wheel, run by ``scripts/wheel-smoke`` in a fresh venv.

Only the standard library and crossgate: it imports the package from the venv (not the
checkout), serves one request each way, and runs the ``crossgate`` command's help. Exits
non-zero with a message on the first failure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import crossgate
from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.testing import call_http, call_lifespan, http_scope


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"wheel smoke test: {message}")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()  # to the end: the adapter marks wsgi.input_terminated
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi got " + body]


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi got " + message.get("body", b"")})


async def wsgi_in_asgi() -> None:
    """WSGIToASGI, driven by crossgate's in-memory ASGI server (lifespan around the request)."""
    adapter = WSGIToASGI(wsgi_app, workers=2)
    lifespan = await call_lifespan(adapter)
    check(lifespan.types[-1] == "lifespan.shutdown.complete", f"lifespan: {lifespan.types}")
    result = await call_http(adapter, http_scope("POST", "/"), body=b"hello")
    check(result.status == 200, f"WSGIToASGI answered {result.status}")
    check(result.body == b"wsgi got hello", f"WSGIToASGI answered {result.body!r}")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def asgi_in_wsgi() -> None:
    """ASGIToWSGI behind wsgiref's server on a real socket (127.0.0.1, a port the kernel picks)."""
    adapter = ASGIToWSGI(asgi_app)
    with make_server("127.0.0.1", 0, adapter, handler_class=QuietHandler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/"
        with urllib.request.urlopen(url, data=b"hello", timeout=30) as response:
            status, body = response.status, response.read()
        thread.join(30)
    check(status == 200, f"ASGIToWSGI answered {status}")
    check(body == b"asgi got hello", f"ASGIToWSGI answered {body!r}")


def main() -> None:
    where = Path(crossgate.__file__).resolve()
    check(Path(sys.prefix).resolve() in where.parents, f"crossgate imported from {where}")
    asyncio.run(wsgi_in_asgi())
    asgi_in_wsgi()
    command = Path(sys.prefix) / "bin" / "crossgate"
    for argv in ([str(command), "serve", "--help"], [sys.executable, "-m", "crossgate", "--help"]):
        # The venv's own command and interpreter, nothing from outside.
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
        check(done.returncode == 0 and "serve" in done.stdout, f"{argv}: {done}")
    print(f"wheel smoke test: crossgate {crossgate.__version__} from {where.parent}: ok")


if __name__ == "__main__":
    main()
