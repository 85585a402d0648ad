"""Views and helpers that make ORM calls and record the thread and connection of each.

Every ORM step records the thread it ran on, the identity of the database connection it used
and whether a ``transaction.atomic`` block was open on it. One thread and one connection for
the whole block, and a rollback that takes every write with it, prove that crossgate's
thread-sensitive calls ran where Django's own did.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async as asgiref_sync_to_async
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from crossgate.concurrency import async_to_sync, sync_to_async
from tests.concurrency.django_project.notes.models import Note


class Trace:
    """The ORM steps of one scenario, in order."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def step(self, label: str) -> None:
        # Django's connection handler keeps one connection per thread.
        connection.ensure_connection()
        self.steps.append(
            {
                "label": label,
                "thread": threading.get_ident(),
                "connection": id(connection.connection),
                "atomic": connection.in_atomic_block,
            }
        )

    def write(self, text: str) -> None:
        Note.objects.create(text=text)
        self.step(f"write {text}")

    def count(self) -> int:
        self.step("count")
        count: int = Note.objects.count()
        return count


def sensitive(func: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    return sync_to_async(func, thread_sensitive=True)


async def orm_steps(trace: Trace) -> int:
    """crossgate's thread-sensitive calls and Django's async ORM, interleaved."""
    await sensitive(trace.write)("crossgate")
    await Note.objects.acreate(text="django")  # asgiref's sync_to_async(thread_sensitive=True)
    return int(await sensitive(trace.count)())


def record_thread(get_response: Callable[[HttpRequest], HttpResponse]) -> Any:
    """A sync-only middleware: Django runs it on the request's thread-sensitive thread."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.META["crossgate.middleware_thread"] = threading.get_ident()
        return get_response(request)

    return middleware


async def async_atomic(request: HttpRequest) -> JsonResponse:
    """An async view opening ``transaction.atomic`` through crossgate's calls."""
    trace = Trace()
    atomic = transaction.atomic()

    def enter() -> None:
        atomic.__enter__()
        trace.step("enter")

    def leave() -> None:
        atomic.__exit__(RuntimeError, RuntimeError("roll back"), None)
        trace.step("exit")

    await sensitive(enter)()
    inside = await orm_steps(trace)
    django_thread = await asgiref_sync_to_async(threading.get_ident)()
    await sensitive(leave)()
    after = await sensitive(trace.count)()
    return JsonResponse(
        {
            "steps": trace.steps,
            "inside": inside,
            "after": after,
            "django_thread": django_thread,
            "middleware_thread": request.META.get("crossgate.middleware_thread"),
            "loop": id(asyncio.get_running_loop()),
        }
    )


def sync_atomic(request: HttpRequest) -> JsonResponse:
    """A sync view calling async code that makes thread-sensitive calls, in one atomic."""
    trace = Trace()
    loops: list[int] = []

    async def inner() -> int:
        loops.append(id(asyncio.get_running_loop()))
        return await orm_steps(trace)

    with transaction.atomic():
        trace.step("view")
        inside = async_to_sync(inner)()
        transaction.set_rollback(True)
    after = trace.count()
    return JsonResponse({"steps": trace.steps, "inside": inside, "after": after, "loop": loops[0]})
