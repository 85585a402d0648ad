"""Extra peak memory and disk writes for one big upload or download, in a fresh process.

``python -m bench.memory ADAPTER upload|download [--mib N]`` prints one line of JSON:
``extra_rss`` (peak RSS during the request minus RSS just before it), ``write_bytes`` (bytes
this process sent towards storage, from ``/proc/self/io``), ``wchar`` (bytes passed to
``write()`` and friends) and ``seconds``.

The peak is the kernel's own high-water mark (``VmHWM``), reset right before the request by
writing ``5`` to ``/proc/self/clear_refs`` (proc(5)), so no sampling thread competes with the
adapter for the GIL. A warm-up request first starts the pool threads and fills the caches.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from bench import apps
from bench.adapters import ADAPTERS, build
from bench.harness import ASGIApp, BenchError, Receive, Send, call, http_scope
from bench.subproc import emit, run_child

__all__ = ["measure", "reset_peak", "status_kib"]

KIB = 1024
MIB = 1024 * KIB
CHUNK = 64 * KIB
WARMUP_SIZE = MIB
# Even asgiref, spooling 256 MiB to disk, finishes in seconds; a minute means it hung.
REQUEST_TIMEOUT = 60.0
# Upload messages and download chunks are fresh copies of this, one per message, as they would
# be off a socket or out of a file: an adapter holding on to them shows in the figures.
_TEMPLATE = bytearray(b"x" * CHUNK)


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (proc(5), clear_refs "5"); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _io() -> dict[str, int]:
    with open("/proc/self/io") as io:
        return {key: int(value) for key, value in (line.split(": ") for line in io)}


def _download_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answer as many bytes as the query string says, in ``CHUNK`` pieces."""
    count = int(environ["QUERY_STRING"]) // CHUNK
    start_response("200 OK", [("Content-Length", str(count * CHUNK))])
    return (bytes(_TEMPLATE) for _ in range(count))


async def _download_asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    count = int(scope["query_string"]) // CHUNK
    headers = [(b"content-length", str(count * CHUNK).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(count):
        await send({"type": "http.response.body", "body": bytes(_TEMPLATE), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _request(app: ASGIApp, mode: str, size: int) -> None:
    if mode == "upload":
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
        ]
        scope = http_scope("POST", "/", headers)
        await call(app, scope, bytes(_TEMPLATE), size // CHUNK, len(str(size)), fresh=True)
    else:
        await call(app, http_scope(query=str(size).encode()), b"", 1, size)


async def _measure_here(adapter: str, mode: str, size: int) -> tuple[dict[str, Any], bool]:
    if mode == "upload":
        app, close = build(adapter, apps.upload_wsgi, apps.upload_asgi)
    else:
        app, close = build(adapter, _download_wsgi, _download_asgi)
    try:
        # The warm-up starts the pool threads and fills the caches before the baseline.
        await asyncio.wait_for(_request(app, mode, WARMUP_SIZE), REQUEST_TIMEOUT)
        gc.collect()
        exact = reset_peak()
        baseline_kib = status_kib("VmRSS")
        if not exact:
            baseline_kib = max(baseline_kib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        before = _io()
        started = time.perf_counter()
        await asyncio.wait_for(_request(app, mode, size), REQUEST_TIMEOUT)
        seconds = time.perf_counter() - started
        after = _io()
        if exact:
            peak_kib = status_kib("VmHWM")
        else:
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except TimeoutError:
        return {"error": "timeout"}, True
    except BenchError as exc:
        return {"error": f"error: {exc}"}, False
    close()
    return {
        "extra_rss": max(0, peak_kib - baseline_kib) * KIB,
        "write_bytes": after["write_bytes"] - before["write_bytes"],
        "wchar": after["wchar"] - before["wchar"],
        "seconds": seconds,
        "exact_peak": exact,
    }, False


def measure(adapter: str, mode: str, mib: int) -> dict[str, Any]:
    return run_child(
        "bench.memory", [adapter, mode, "--mib", str(mib)], timeout=2 * REQUEST_TIMEOUT + 30
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("adapter", choices=ADAPTERS)
    parser.add_argument("mode", choices=("upload", "download"))
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    result, hung = asyncio.run(_measure_here(args.adapter, args.mode, args.mib * MIB))
    emit(result, hard_exit=hung)


if __name__ == "__main__":
    main()
