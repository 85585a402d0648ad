"""Django's asgiref ``Local`` values cross crossgate's helpers exactly as they cross asgiref's.

Django keeps the active language, script prefix, time zone and urlconf in asgiref ``Local``s.
Every scenario below runs twice, once through asgiref's ``sync_to_async``/``async_to_sync`` and
once through crossgate's, in a fresh plain thread, and the two results must be equal (and equal
to the values the scenario set, so a test cannot pass by both being wrong). The same file runs
against asgiref 3.11, 3.12 and 3.13 (``CHECKED``); on another version a test says so.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import asgiref
import asgiref.sync
import django
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import override_settings
from django.urls import get_script_prefix, get_urlconf, path, set_script_prefix, set_urlconf
from django.utils import timezone, translation

import crossgate.concurrency
from crossgate.concurrency import _asgiref as cg_locals
from crossgate.testing import call_http, http_scope
from tests.concurrency.conftest import WAIT, run

# The asgiref minor versions whose Local storage crossgate's re-homing was checked against.
CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})

if not settings.configured:
    settings.configure(
        USE_I18N=True,
        USE_TZ=True,
        LANGUAGE_CODE="en-us",
        TIME_ZONE="UTC",
        INSTALLED_APPS=[],
    )
django.setup()

Values = tuple[str | None, str, str, str | None]

DEFAULT: Values = ("en-us", "/", "UTC", None)
OUTER: Values = ("fr", "/shop/", "Europe/Paris", "tests.concurrency.urls_outer")
INNER: Values = ("de", "/inner/", "Asia/Tokyo", "tests.concurrency.urls_inner")


def activate(values: Values) -> None:
    language, prefix, zone, urlconf = values
    assert language is not None
    translation.activate(language)
    set_script_prefix(prefix)
    timezone.activate(zone)
    set_urlconf(urlconf)


def read() -> Values:
    return (
        translation.get_language(),
        get_script_prefix(),
        timezone.get_current_timezone_name(),
        get_urlconf(),
    )


async def aread() -> Values:
    return read()


async def aactivate(values: Values) -> None:
    activate(values)


ASGIREF = SimpleNamespace(
    name="asgiref",
    sync_to_async=asgiref.sync.sync_to_async,
    async_to_sync=asgiref.sync.async_to_sync,
)
CROSSGATE = SimpleNamespace(
    name="crossgate",
    sync_to_async=crossgate.concurrency.sync_to_async,
    async_to_sync=crossgate.concurrency.async_to_sync,
)

Scenario = Callable[[Any, bool], Any]


def in_plain_thread(scenario: Scenario, helpers: Any, sensitive: bool) -> Any:
    """Run ``scenario`` in a new thread (an empty context: no Local values); return its result."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = scenario(helpers, sensitive)
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    thread = threading.Thread(target=target, name="plain")
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the scenario hung"
    if "error" in box:  # pragma: no cover - a failing scenario
        raise box["error"]
    return box["result"]


def on_a_loop(main: Callable[[Any, bool], Awaitable[Any]]) -> Scenario:
    def scenario(helpers: Any, sensitive: bool) -> Any:
        return asyncio.run(main(helpers, sensitive))  # type: ignore[arg-type]

    return scenario


# -- async -> sync: sync_to_async from a loop ------------------------------------------------


async def _loop_to_sync_reads(h: Any, sensitive: bool) -> Any:
    activate(OUTER)
    return await h.sync_to_async(read, thread_sensitive=sensitive)()


async def _loop_to_sync_writes(h: Any, sensitive: bool) -> Any:
    activate(OUTER)
    await h.sync_to_async(activate, thread_sensitive=sensitive)(INNER)
    return read()


async def _loop_to_sync_twice(h: Any, sensitive: bool) -> Any:
    # The values a first call handed back reach a second call.
    await h.sync_to_async(activate, thread_sensitive=sensitive)(INNER)
    return await h.sync_to_async(read, thread_sensitive=sensitive)(), read()


# -- sync -> async: async_to_sync from a plain thread ----------------------------------------


def _sync_to_loop_reads(h: Any, sensitive: bool) -> Any:
    activate(OUTER)
    return h.async_to_sync(aread)()


def _sync_to_loop_writes(h: Any, sensitive: bool) -> Any:
    activate(OUTER)
    h.async_to_sync(aactivate)(INNER)
    return read()


# -- from a loop: async_to_sync in a thread running a sync_to_async call -----------------------


async def _loop_sync_loop(h: Any, sensitive: bool) -> Any:
    activate(OUTER)

    def middle() -> Any:
        seen = h.async_to_sync(aread)()
        h.async_to_sync(aactivate)(INNER)
        return seen, read()

    inner = await h.sync_to_async(middle, thread_sensitive=sensitive)()
    return inner, read()


# -- nested: sync -> async -> sync -----------------------------------------------------------


def _sync_async_sync(h: Any, sensitive: bool) -> Any:
    activate(OUTER)

    async def middle() -> Any:
        seen = await h.sync_to_async(read, thread_sensitive=sensitive)()
        await h.sync_to_async(activate, thread_sensitive=sensitive)(INNER)
        return seen, read()

    inner = h.async_to_sync(middle)()
    return inner, read()


def _sync_async_sync_async(h: Any, sensitive: bool) -> Any:
    # One level deeper: the innermost coroutine reads what the outermost thread set.
    activate(OUTER)

    def inner_sync() -> Any:
        return h.async_to_sync(aread)()

    async def middle() -> Any:
        return await h.sync_to_async(inner_sync, thread_sensitive=sensitive)()

    return h.async_to_sync(middle)()


SCENARIOS: dict[str, tuple[Scenario, Any]] = {
    "loop->sync reads": (on_a_loop(_loop_to_sync_reads), OUTER),
    "loop->sync writes back": (on_a_loop(_loop_to_sync_writes), INNER),
    "loop->sync twice": (on_a_loop(_loop_to_sync_twice), (INNER, INNER)),
    "thread->async reads": (_sync_to_loop_reads, OUTER),
    "thread->async writes back": (_sync_to_loop_writes, INNER),
    "loop->sync->async": (on_a_loop(_loop_sync_loop), ((OUTER, INNER), INNER)),
    "thread->async->sync": (_sync_async_sync, ((OUTER, INNER), INNER)),
    "thread->async->sync->async": (_sync_async_sync_async, OUTER),
}


@pytest.fixture(autouse=True)
def clean_locals() -> Iterator[None]:
    # Scenarios run in their own threads; this only guards the test's own thread.
    yield
    activate(("en-us", "/", "UTC", None))


@pytest.mark.parametrize("sensitive", [True, False], ids=["sensitive", "parallel"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_django_locals_cross_like_asgiref(name: str, sensitive: bool) -> None:
    scenario, expected = SCENARIOS[name]
    theirs = in_plain_thread(scenario, ASGIREF, sensitive)
    ours = in_plain_thread(scenario, CROSSGATE, sensitive)
    assert theirs == expected, f"asgiref {asgiref.__version__} itself gave {theirs}"
    assert ours == theirs


# -- the example: a Django async view under Django's own ASGIHandler --------------------


async def locale_view(request: HttpRequest) -> HttpResponse:
    translation.activate("fr")
    set_script_prefix("/shop/")
    seen = {}
    for name, helpers in (("asgiref", ASGIREF), ("crossgate", CROSSGATE)):
        for sensitive in (True, False):
            call = helpers.sync_to_async(read, thread_sensitive=sensitive)
            seen[f"{name} thread_sensitive={sensitive}"] = list(await call())
    return JsonResponse(seen)


urlpatterns = [path("locale/", locale_view)]


def test_a_django_view_under_asgi_handler_sees_its_language_in_the_thread() -> None:
    from django.core.handlers.asgi import ASGIHandler

    with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"]):
        # Django sends "Content-Type" capitalised, which the ASGI spec allows in a response
        # but crossgate's strict checker refuses: the check is beside the point here.
        handler: Any = ASGIHandler()  # django-stubs type its scope as a dict
        result = run(lambda: call_http(handler, http_scope(path="/locale/"), check=False))
    assert result.status == 200, result.text
    seen = json.loads(result.body)
    assert len(seen) == 4
    # Django set the urlconf for the request; the view the language and the prefix.
    for where, values in seen.items():
        assert values == ["fr", "/shop/", "UTC", __name__], where


def test_a_plain_thread_starts_with_the_defaults() -> None:
    # The baseline the scenarios rely on: a new thread sees none of another thread's values.
    activate(OUTER)
    assert in_plain_thread(lambda h, s: read(), CROSSGATE, True) == DEFAULT


def test_sync_to_async_iter_reads_with_the_consumers_locals() -> None:
    def languages() -> Iterator[str | None]:
        yield translation.get_language()
        yield get_script_prefix()

    async def main(h: Any, sensitive: bool) -> list[str | None]:
        activate(OUTER)
        iterator = crossgate.concurrency.sync_to_async_iter(languages(), thread_sensitive=sensitive)
        return [item async for item in iterator]

    for sensitive in (True, False):
        assert in_plain_thread(on_a_loop(main), CROSSGATE, sensitive) == ["fr", "/shop/"]


def test_async_to_sync_iter_reads_with_the_consumers_locals() -> None:
    async def languages() -> Any:
        yield translation.get_language()
        yield get_script_prefix()

    def main(h: Any, sensitive: bool) -> list[str | None]:
        activate(OUTER)
        with crossgate.concurrency.async_to_sync_iter(languages()) as iterator:
            return list(iterator)

    assert in_plain_thread(main, CROSSGATE, True) == ["fr", "/shop/"]


def test_this_asgiref_version_was_checked() -> None:
    # crossgate re-homes asgiref's Local storage through asgiref internals (see
    # crossgate/concurrency/_asgiref.py). On a new asgiref version: read asgiref/local.py and
    # sync.py (_restore_context), make sure crossgate re-homes where and how asgiref does,
    # run this file, then add the version to CHECKED.
    version = cg_locals.asgiref_version()
    assert version is not None
    assert version[:2] in CHECKED, (
        f"asgiref {asgiref.__version__} was never checked against crossgate's re-homing of "
        "asgiref Local storage: see crossgate/concurrency/_asgiref.py"
    )
    if version[:2] >= (3, 12):
        assert cg_locals.rehomer() is not None, "asgiref tags Local storage, but none was found"
    else:
        assert cg_locals.rehomer() is None


# -- the version check, with stand-ins for asgiref's modules --------------------------------


def _stand_ins(
    monkeypatch: pytest.MonkeyPatch, version: object, **local_names: object
) -> types.ModuleType:
    package = types.ModuleType("asgiref")
    package.__version__ = version  # type: ignore[attr-defined]
    local = types.ModuleType("asgiref.local")
    for name, value in local_names.items():
        setattr(local, name, value)
    monkeypatch.setitem(sys.modules, "asgiref", package)
    monkeypatch.setitem(sys.modules, "asgiref.local", local)
    return local


class _Storage:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


def _rehome(storage: _Storage) -> _Storage:
    return _Storage(dict(storage.data, moved=True))


def test_without_asgiref_nothing_is_rehomed(monkeypatch: pytest.MonkeyPatch) -> None:
    # crossgate never imports asgiref: an application that did not is left alone.
    monkeypatch.delitem(sys.modules, "asgiref.local")
    assert cg_locals.rehomer() is None


def test_before_3_12_nothing_is_rehomed(monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_ins(monkeypatch, "3.11.1", _Storage=_Storage, _rehome=_rehome)
    assert cg_locals.rehomer() is None


def test_a_newer_asgiref_with_the_same_internals_is_rehomed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stand_ins(monkeypatch, "4.0.0rc1", _Storage=_Storage, _rehome=_rehome)
    assert cg_locals.asgiref_version() == (4, 0)
    var: contextvars.ContextVar[object] = contextvars.ContextVar("stand-in")
    ctx = contextvars.copy_context()
    ctx.run(var.set, _Storage({"language": "fr"}))
    ctx.run(cg_locals.adopt_locals)
    moved = ctx[var]
    assert isinstance(moved, _Storage)
    assert moved.data == {"language": "fr", "moved": True}


def test_an_asgiref_without_the_internals_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _stand_ins(monkeypatch, None)
    with caplog.at_level(logging.WARNING, logger="crossgate.concurrency"):
        assert cg_locals.rehomer() is None
        cg_locals.adopt_locals()  # nothing to do, nothing raised
    assert cg_locals.asgiref_version() is None
    assert "(unknown version) stores Local values in a way crossgate does not know" in caplog.text
