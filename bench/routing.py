"""Routers on the hot path: the time each router adds to a request, against the bare app.

``python -m bench.routing [--quick]`` prints the table. Each row runs in a fresh child process
(``python -m bench.routing --child ROW``) that times the bare ASGI app and the same app behind
the router in alternating blocks of calls, in the same process and loop, and keeps the fastest
block of each: the least disturbed figure on a shared machine. "added" is routed minus bare.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.report import Row, Table, text_table
from bench.subproc import cell, emit, progress, run_child
from crossgate.routing import Fallback, Mount, PathRouter, ProtocolRouter

__all__ = ["ROWS", "section"]

TARGET_US = 2.0
# Bounds every measurement in count as well as in time.
MAX_ROUNDS = 5_000
WARMUP = 5_000  # calls, and the most calls in one block
BLOCK_SECONDS = 0.0005  # a timed block lasts about this long
GRACE = 30.0

Message = dict[str, Any]
App = Callable[[Message, Any, Any], Any]

_BODY: Message = {"type": "http.request", "body": b"", "more_body": False}
_START: Message = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]}
_HELLO: Message = {"type": "http.response.body", "body": b"Hello, world!"}


async def bare(scope: Message, receive: Any, send: Any) -> None:
    """The app every router routes to: reads its (empty) body, answers hello."""
    await receive()
    await send(_START)
    await send(_HELLO)


async def other(scope: Message, receive: Any, send: Any) -> None:  # never reached
    await bare(scope, receive, send)


async def _receive() -> Message:
    return _BODY


async def _send(message: Message) -> None:
    pass


def _scope(path: str) -> Message:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


_LIFESPANS: list[asyncio.Task[None]] = []


async def _with_state(router: Any) -> Any:
    """Run the router's lifespan startup with an app that keeps state of its own."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    queue.put_nowait({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def send(message: Message) -> None:
        started.set()

    # Kept referenced: the loop holds tasks weakly. asyncio.run cancels it at the end.
    _LIFESPANS.append(
        asyncio.get_running_loop().create_task(
            router({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send)
        )
    )
    await started.wait()
    return router


async def _stateful(scope: Message, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["db"] = object()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await bare(scope, receive, send)


def _protocol() -> tuple[App, App, str]:
    return bare, ProtocolRouter({"http": bare, "websocket": other}), "/"


def _protocol_state() -> tuple[App, App, str]:
    return _stateful, ProtocolRouter({"http": _stateful, "websocket": other}), "/"


def _path() -> tuple[App, App, str]:
    mounts = [Mount(p, other) for p in ("/api", "/admin", "/static")]
    return bare, PathRouter([*mounts, Mount("/legacy", bare)], default=other), "/legacy/page"


def _nested() -> tuple[App, App, str]:
    inner = PathRouter([Mount("/v1", bare)], default=other)
    return bare, PathRouter([Mount("/api", inner)], default=other), "/api/v1/items"


def _fallback() -> tuple[App, App, str]:
    return bare, Fallback(bare, other), "/"


# Row key -> (label, builder of (bare app, routed app, request path), needs lifespan first).
ROWS: dict[str, tuple[str, Callable[[], tuple[App, App, str]], bool]] = {
    "protocol": ("ProtocolRouter, http", _protocol, False),
    "protocol-state": ("ProtocolRouter, http app with lifespan state", _protocol_state, True),
    "path": ("PathRouter, 4 mounts, request under one", _path, False),
    "nested": ("PathRouter in a Mount, 2 levels", _nested, False),
    "fallback": ("Fallback, the primary answers", _fallback, False),
}


async def _block(app: App, scope: Message, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await app(scope, _receive, _send)
    return (time.perf_counter() - started) / count


async def _measure(key: str, seconds: float) -> dict[str, Any]:
    plain, routed, path = ROWS[key][1]()
    if ROWS[key][2]:
        await _with_state(routed)
    scope = _scope(path)
    # Warm both paths up (caches, specialisation) and size each one's blocks to about the
    # same duration: on a shared machine a longer block is likelier to be interrupted, which
    # would bias the slower path upwards. Then alternate blocks until the time box.
    counts = []
    for app in (plain, routed):
        per_call = await _block(app, scope, WARMUP)
        counts.append(max(10, min(WARMUP, int(BLOCK_SECONDS / per_call))))
    best_bare = best_routed = float("inf")
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < MAX_ROUNDS and (rounds < 3 or time.perf_counter() < deadline):
        best_bare = min(best_bare, await _block(plain, scope, counts[0]))
        best_routed = min(best_routed, await _block(routed, scope, counts[1]))
        rounds += 1
    return {
        "bare": best_bare * 1e6,
        "routed": best_routed * 1e6,
        "added": (best_routed - best_bare) * 1e6,
        "rounds": rounds,
    }


def measure(key: str, seconds: float) -> dict[str, Any]:
    return run_child("bench.routing", ["--child", key, "--seconds", str(seconds)], seconds + GRACE)


def section(quick: bool) -> Table:
    seconds = 0.5 if quick else 3.0
    rows = []
    for key, (label, _, _) in ROWS.items():
        result = measure(key, seconds)
        row = Row(f"{label} (per request)", "us", target=f"added <= {TARGET_US:g} us")
        row.cells = {
            "bare app": cell(result, "bare"),
            "crossgate": cell(result, "routed"),
            "added": cell(result, "added"),
        }
        added = row.number("added")
        row.met = None if added is None else added <= TARGET_US
        shown = result.get("error") or f"+{result['added']:.2f} us"
        progress(f"  {key:<15} {shown}")
        rows.append(row)
    return Table(
        title="Routers: time added per request",
        columns=("bare app", "crossgate", "added"),
        ratios=("bare app",),
        rows=rows,
        notes=[
            "bare app: the ASGI app called directly; crossgate: the same app behind the router; "
            "added = crossgate - bare app. Fastest of alternating blocks of about 0.5 ms each, "
            "in-process, no server.",
            "The app reads its (empty) body and answers hello with two sends.",
            "'with lifespan state': the app keeps its own lifespan state, so each request gets "
            "a scope copy carrying a copy of that state (ASGI spec).",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--child", choices=sorted(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=3.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        emit(asyncio.run(_measure(args.child, args.seconds)), hard_exit=False)
        return
    print(text_table(section(args.quick)))


if __name__ == "__main__":
    main()
