"""Run the thread-sensitivity scenarios against Django and print what happened, as JSON.

``python -m tests.concurrency.django_project.probe`` with ``CROSSGATE_TEST_DB`` naming a fresh
SQLite file. Every scenario opens one ``transaction.atomic``, writes through crossgate's
thread-sensitive calls and Django's async ORM, counts inside, rolls back and counts again.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.concurrency.django_project.settings")

import django

django.setup()

from asgiref.sync import async_to_sync as asgiref_async_to_sync  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from crossgate.concurrency import (  # noqa: E402
    ThreadSensitiveContext,
    async_to_sync,
    sync_to_async,
)
from crossgate.testing import call_http, http_scope  # noqa: E402
from tests.concurrency.django_project.notes.models import Note  # noqa: E402
from tests.concurrency.django_project.views import Trace, orm_steps  # noqa: E402

AsyncToSync = Callable[[Callable[[], Awaitable[int]]], Callable[[], int]]


def request(path: str) -> dict[str, Any]:
    """One request through Django's ASGIHandler, in process; the view's report."""
    handler = get_asgi_application()

    async def application(scope: Any, receive: Any, send: Any) -> None:
        await handler(scope, receive, send)

    async def main() -> dict[str, Any]:
        # check=False: Django sends header names as written ("Content-Type"), where the ASGI
        # spec asks for lower case; not what this probe is about.
        result = await call_http(application, http_scope(path=path), check=False)
        if result.status != 200:
            raise RuntimeError(f"{path} answered {result.status}: {result.text}")
        report: dict[str, Any] = json.loads(result.body)
        report["server_loop"] = id(asyncio.get_running_loop())
        return report

    return asyncio.run(main())


def under_outer(bridge: AsyncToSync) -> dict[str, Any]:
    """Sync code opens the atomic block and calls async code through ``bridge``."""
    trace = Trace()

    async def inner() -> int:
        return await orm_steps(trace)

    with transaction.atomic():
        trace.step("outer")
        inside = bridge(inner)()
        transaction.set_rollback(True)
    after = trace.count()
    return {"steps": trace.steps, "inside": inside, "after": after}


def outside_any_context() -> dict[str, Any]:
    """crossgate's own threads: one process-wide, one per `ThreadSensitiveContext`."""
    trace = Trace()
    step = sync_to_async(trace.step, thread_sensitive=True)

    async def main() -> None:
        await step("default 1")
        await step("default 2")
        async with ThreadSensitiveContext():
            await step("context 1")
            await step("context 2")

    asyncio.run(main())
    return {"steps": trace.steps}


def main() -> None:
    with connection.schema_editor() as editor:
        editor.create_model(Note)
    report = {
        "request_async": request("/async-atomic"),
        "request_sync": request("/sync-atomic"),
        "outer_crossgate": under_outer(async_to_sync),
        "outer_asgiref": under_outer(asgiref_async_to_sync),
        "outside": outside_any_context(),
        "main_thread": threading.get_ident(),
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
