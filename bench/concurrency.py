"""sync_to_async / async_to_sync: the cost of a call, crossgate against asgiref, asyncio, anyio.

``python -m bench.concurrency [--quick]`` prints the table. Every measurement runs in a fresh
child process (``python -m bench.concurrency --child ROW CONTENDER``) that warms up, then times
blocks of calls until its time box and keeps the fastest block: the least disturbed figure on a
shared machine. The contenders of a row take turns, for several rounds, and each keeps its best
round, so a burst of load from elsewhere does not land on one contender only. The function
called is trivial, so the figures are the bridges' own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.report import Row, Table, text_table
from bench.subproc import Cell, cell, emit, progress, run_child

__all__ = ["CONTENDERS", "ROWS", "section"]

CONTENDERS = ("crossgate", "asgiref", "asyncio", "anyio")
CONCURRENT = 1_000
# Bounds every measurement in count as well as in time.
MAX_BLOCKS = 2_000
BLOCK_CALLS = 50  # calls per timed block (one gather of CONCURRENT calls for that row)
WARMUP_CALLS = 300
GRACE = 60.0


def work() -> int:
    return 1


async def awork() -> int:
    return 1


# -- sync_to_async: an awaitable that runs `work` in a thread, per contender ------------------


def _s2a(contender: str, *, sensitive: bool) -> Callable[[], Awaitable[int]] | None:
    if contender == "crossgate":
        from crossgate.concurrency import sync_to_async

        return sync_to_async(work, thread_sensitive=sensitive)
    if contender == "asgiref":
        from asgiref.sync import sync_to_async as asgiref_sync_to_async

        return asgiref_sync_to_async(work, thread_sensitive=sensitive)
    if contender == "asyncio":
        if not sensitive:
            return lambda: asyncio.to_thread(work)
        # The nearest plain-asyncio equivalent: one dedicated thread.
        single = ThreadPoolExecutor(1)
        return lambda: asyncio.get_running_loop().run_in_executor(single, work)
    if sensitive:
        return None  # anyio has no notion of a thread-sensitive call
    import anyio.to_thread

    return lambda: anyio.to_thread.run_sync(work)


async def _time_calls(call: Callable[[], Awaitable[int]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count


async def _time_gather(call: Callable[[], Awaitable[int]], count: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(count)))
    return time.perf_counter() - started


async def _fastest(block: Callable[[], Awaitable[float]], seconds: float) -> float:
    best = float("inf")
    deadline = time.perf_counter() + seconds
    blocks = 0
    while blocks < MAX_BLOCKS and (blocks < 3 or time.perf_counter() < deadline):
        best = min(best, await block())
        blocks += 1
    return best


async def _measure_s2a(row: str, contender: str, seconds: float) -> dict[str, Any]:
    call = _s2a(contender, sensitive=row == "s2a-sensitive")
    if call is None:
        return {"error": "n/a"}
    await _time_calls(call, WARMUP_CALLS)
    if row == "s2a-1000":
        await _time_gather(call, CONCURRENT)
        best = await _fastest(lambda: _time_gather(call, CONCURRENT), seconds)
        return {"value": best * 1e3}
    best = await _fastest(lambda: _time_calls(call, BLOCK_CALLS), seconds)
    return {"value": best * 1e6}


# -- async_to_sync: a sync callable that runs `awork` on an event loop, per contender ---------


def _fastest_sync(block: Callable[[], float], seconds: float) -> float:
    best = float("inf")
    deadline = time.perf_counter() + seconds
    blocks = 0
    while blocks < MAX_BLOCKS and (blocks < 3 or time.perf_counter() < deadline):
        best = min(best, block())
        blocks += 1
    return best


def _time_sync_calls(call: Callable[[], int], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count


def _sync_best(call: Callable[[], int], seconds: float) -> float:
    _time_sync_calls(call, WARMUP_CALLS)
    return _fastest_sync(lambda: _time_sync_calls(call, BLOCK_CALLS), seconds) * 1e6


def _measure_a2s_thread(contender: str, seconds: float) -> dict[str, Any]:
    if contender == "crossgate":
        from crossgate.concurrency import async_to_sync

        return {"value": _sync_best(async_to_sync(awork), seconds)}
    if contender == "asgiref":
        from asgiref.sync import async_to_sync as asgiref_async_to_sync

        return {"value": _sync_best(asgiref_async_to_sync(awork), seconds)}
    if contender == "asyncio":
        # The floor: one hand-off to a loop already running in another thread.
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            value = _sync_best(
                lambda: asyncio.run_coroutine_threadsafe(awork(), loop).result(), seconds
            )
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(GRACE)
            loop.close()
        return {"value": value}
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        return {"value": _sync_best(lambda: portal.call(awork), seconds)}


def _measure_a2s_wsgi(contender: str, seconds: float) -> dict[str, Any]:
    """Per call from inside a WSGI app served by `WSGIToASGI` (in process, one request)."""
    from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
    from crossgate.concurrency import server_loop
    from crossgate.testing import call_http

    if contender == "anyio":
        return {"error": "n/a"}  # anyio's from_thread needs a thread anyio started
    result: dict[str, Any] = {}

    def bridge() -> Callable[[], int]:
        if contender == "crossgate":
            from crossgate.concurrency import async_to_sync

            return async_to_sync(awork)
        if contender == "asgiref":
            from asgiref.sync import async_to_sync as asgiref_async_to_sync

            return asgiref_async_to_sync(awork)
        loop = server_loop()
        if loop is None:
            raise RuntimeError("no server loop in the WSGI worker")
        return lambda: asyncio.run_coroutine_threadsafe(awork(), loop).result()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result["value"] = _sync_best(bridge(), seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    adapter = WSGIToASGI(app)
    try:
        answer = asyncio.run(call_http(adapter, timeout=seconds + GRACE))
    finally:
        adapter.close()
    if answer.status != 200:
        return {"error": f"status {answer.status}"}
    return result


# -- the table ----------------------------------------------------------------------------------

# Row key -> (label, kind, target as printed, the most crossgate / asgiref or asyncio may be).
ROWS: dict[str, tuple[str, Any, str, tuple[str, float] | None]] = {
    "s2a": (
        "sync_to_async, per call (thread_sensitive=False)",
        "us",
        "<= 0.8x asgiref",
        ("asgiref", 0.8),
    ),
    "s2a-1000": (
        f"{CONCURRENT:,} concurrent sync_to_async calls, all done",
        "ms",
        ">= 1.5x faster than asgiref",
        ("asgiref", 1 / 1.5),
    ),
    "s2a-sensitive": (
        "sync_to_async, per call (thread_sensitive=True)",
        "us",
        "",
        None,
    ),
    "a2s-thread": (
        "async_to_sync from a plain thread, per call",
        "us",
        "<= 0.35x asgiref",
        ("asgiref", 0.35),
    ),
    "a2s-wsgi": (
        "async_to_sync in a WSGIToASGI worker, per call",
        "us",
        "one hand-off: <= 1.5x asyncio",
        ("asyncio", 1.5),
    ),
}


def _measure_here(row: str, contender: str, seconds: float) -> dict[str, Any]:
    if row.startswith("s2a"):
        return asyncio.run(_measure_s2a(row, contender, seconds))
    if row == "a2s-thread":
        return _measure_a2s_thread(contender, seconds)
    return _measure_a2s_wsgi(contender, seconds)


def measure(row: str, contender: str, seconds: float) -> dict[str, Any]:
    args = ["--child", row, contender, "--seconds", str(seconds)]
    return run_child("bench.concurrency", args, timeout=seconds + GRACE)


def _best(cells: list[Cell]) -> Cell:
    numbers = [c for c in cells if isinstance(c, float)]
    return min(numbers) if numbers else cells[-1]


def section(quick: bool) -> Table:
    seconds, rounds = (0.3, 1) if quick else (0.7, 3)
    rows = []
    for key, (label, kind, target, limit) in ROWS.items():
        row = Row(label, kind, target=target)
        results: dict[str, list[Cell]] = {}
        for _ in range(rounds):
            for contender in CONTENDERS:
                result = measure(key, contender, seconds)
                if result.get("error") != "n/a":
                    results.setdefault(contender, []).append(cell(result))
        for contender, cells in results.items():
            row.cells[contender] = _best(cells)
            progress(f"  {key:<14} {contender:<10} {cells}")
        if limit is not None:
            ratio = row.ratio(limit[0])
            row.met = None if ratio is None else ratio <= limit[1]
        rows.append(row)
    return Table(
        title="sync_to_async / async_to_sync: cost per call",
        columns=CONTENDERS,
        ratios=("asgiref", "asyncio", "anyio"),
        rows=rows,
        notes=[
            "Each cell: the best of a few rounds in which the contenders take turns; each "
            "round a fresh process, warm-up, then the fastest block of "
            f"{BLOCK_CALLS} sequential calls (or one gather of {CONCURRENT:,} calls) within "
            "its time box. The sync function returns 1; the coroutine returns 1.",
            "asyncio: asyncio.to_thread for sync_to_async (a one-thread executor when "
            "thread-sensitive); for async_to_sync, asyncio.run_coroutine_threadsafe(...).result() "
            "to a loop already running in another thread: one hand-off, no contextvars copied "
            "back, the floor.",
            "anyio: to_thread.run_sync; from_thread via a blocking portal (a loop thread it "
            "keeps). asgiref: thread_sensitive as the row says; its async_to_sync makes a new "
            "thread and loop per call outside a sync_to_async thread (asgiref #370).",
            "In a WSGIToASGI worker crossgate runs the coroutine on the server's own loop; "
            "asgiref cannot find that loop and makes a new one per call.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--child", nargs=2, metavar=("ROW", "CONTENDER"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row, contender = args.child
        if row not in ROWS or contender not in CONTENDERS:
            parser.error(f"unknown row or contender: {row} {contender}")
        # hard_exit: a bridge's leftover threads must not hold the child open.
        emit(_measure_here(row, contender, args.seconds), hard_exit=True)
        return
    print(text_table(section(args.quick)))


if __name__ == "__main__":
    main()
