"""In-process calls/s through the fake server of :mod:`bench.harness`.

``python -m bench.inprocess ADAPTER SCENARIO --seconds S --warmup W`` measures one pair in this
process and prints one line of JSON; :func:`measure` runs that in a fresh child.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.types import WSGIApplication

from bench import apps
from bench.adapters import ADAPTERS, build
from bench.harness import ASGIApp, BenchError, call, http_scope
from bench.subproc import emit, run_child

__all__ = ["SCENARIOS", "Scenario", "measure"]

KIB = 1024
MIB = 1024 * KIB
POST_SIZE = 10 * MIB
POST_CHUNK = 64 * KIB
# Bounds every loop in count as well as in time.
MAX_CALLS = 5_000_000
# Seconds a measurement may overrun its time box before it counts as hung.
GRACE = 10.0


@dataclass(frozen=True)
class Scenario:
    label: str
    wsgi: Callable[[], WSGIApplication]
    native: Callable[[], ASGIApp]
    expect: int
    concurrency: int = 1
    method: str = "GET"
    chunk_size: int = 0
    messages: int = 1
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


SCENARIOS: dict[str, Scenario] = {
    "hello-c1": Scenario(
        "hello world, c=1", lambda: apps.hello_wsgi, lambda: apps.hello_asgi, len(apps.HELLO)
    ),
    "hello-c50": Scenario(
        "hello world, c=50",
        lambda: apps.hello_wsgi,
        lambda: apps.hello_asgi,
        len(apps.HELLO),
        concurrency=50,
    ),
    "1mib-64k": Scenario(
        "1 MiB response, 64 KiB chunks",
        lambda: apps.stream_wsgi(MIB, 64 * KIB),
        lambda: apps.stream_asgi(MIB, 64 * KIB),
        MIB,
    ),
    "1mib-4k": Scenario(
        "1 MiB response, 4 KiB chunks",
        lambda: apps.stream_wsgi(MIB, 4 * KIB),
        lambda: apps.stream_asgi(MIB, 4 * KIB),
        MIB,
    ),
    "post-10mib": Scenario(
        "10 MiB POST, 64 KiB messages",
        lambda: apps.upload_wsgi,
        lambda: apps.upload_asgi,
        len(str(POST_SIZE)),
        method="POST",
        chunk_size=POST_CHUNK,
        messages=POST_SIZE // POST_CHUNK,
        headers=[
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(POST_SIZE).encode()),
        ],
    ),
}


async def _drive(app: ASGIApp, scenario: Scenario, seconds: float) -> tuple[int, float]:
    """Run ``scenario.concurrency`` tasks making requests back to back for ``seconds``."""
    scope = http_scope(scenario.method, "/", scenario.headers)
    chunk = b"x" * scenario.chunk_size
    budget = max(1, MAX_CALLS // scenario.concurrency)
    deadline = time.perf_counter() + seconds

    async def worker() -> int:
        done = 0
        while done < budget and time.perf_counter() < deadline:
            # A fresh scope per call: adapters may keep or change what they are given.
            await call(app, dict(scope), chunk, scenario.messages, scenario.expect)
            done += 1
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
    return sum(counts), time.perf_counter() - started


async def _measure_here(
    adapter: str, scenario: Scenario, seconds: float, warmup: float
) -> tuple[dict[str, Any], bool]:
    """Returns the result and whether the adapter was left hung."""
    app, close = build(adapter, scenario.wsgi(), scenario.native())
    try:
        if warmup > 0:
            await asyncio.wait_for(_drive(app, scenario, warmup), warmup + GRACE)
        calls, elapsed = await asyncio.wait_for(_drive(app, scenario, seconds), seconds + GRACE)
    except TimeoutError:
        return {"error": "timeout"}, True
    except BenchError as exc:
        return {"error": f"error: {exc}"}, False
    close()
    return {"value": calls / elapsed, "calls": calls, "seconds": elapsed}, False


def measure(adapter: str, key: str, seconds: float, warmup: float) -> dict[str, Any]:
    args = [adapter, key, "--seconds", str(seconds), "--warmup", str(warmup)]
    return run_child("bench.inprocess", args, timeout=seconds + warmup + 2 * GRACE + 15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("adapter", choices=ADAPTERS)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    result, hung = asyncio.run(
        _measure_here(args.adapter, SCENARIOS[args.scenario], args.seconds, args.warmup)
    )
    emit(result, hard_exit=hung)


if __name__ == "__main__":
    main()
