"""Code moved from asgiref keeps working: its names, its wrappers' attributes, the docs' table."""

from __future__ import annotations

import asyncio
import functools
import importlib
import re
import threading
import types
from pathlib import Path
from typing import Any

import asgiref.sync
import asgiref.wsgi
import pytest

import crossgate
from crossgate.concurrency import AsyncSingleThreadContext, async_to_sync, sync_to_async
from tests.concurrency.conftest import WAIT

ROOT = Path(__file__).resolve().parents[2]

# -- AsyncSingleThreadContext -------------------------------------------------------------------


async def where() -> tuple[int, asyncio.AbstractEventLoop]:
    return threading.get_ident(), asyncio.get_running_loop()


def _in_plain_thread(body: Any) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = body()
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    if "error" in box:  # pragma: no cover - a failing body
        raise box["error"]
    return box["result"]


def test_async_single_thread_context_runs_the_calls_on_one_thread_like_asgiref() -> None:
    def calls(context: Any, a2s: Any) -> set[int]:
        with context(), context():  # re-entrant
            return {a2s(where)()[0] for _ in range(3)}

    theirs = _in_plain_thread(
        lambda: calls(asgiref.sync.AsyncSingleThreadContext, asgiref.sync.async_to_sync)
    )
    ours = _in_plain_thread(lambda: calls(AsyncSingleThreadContext, async_to_sync))
    assert len(theirs) == 1
    assert len(ours) == 1
    assert crossgate.AsyncSingleThreadContext is AsyncSingleThreadContext


def test_async_single_thread_context_keeps_one_loop_for_loop_bound_clients() -> None:
    # The reason asgiref users enter the context: a client bound to a loop (here a queue),
    # made in one call and used in the next. crossgate keeps the same loop, too.
    def body() -> str:
        with AsyncSingleThreadContext():

            async def make() -> asyncio.Queue[str]:
                queue: asyncio.Queue[str] = asyncio.Queue()
                queue.put_nowait("still bound to a running loop")
                return queue

            queue = async_to_sync(make)()

            async def use() -> str:
                return await asyncio.wait_for(queue.get(), WAIT)

            return async_to_sync(use)()

    assert _in_plain_thread(body) == "still bound to a running loop"


def test_async_single_thread_context_lets_exceptions_through() -> None:
    with pytest.raises(KeyError), AsyncSingleThreadContext():
        raise KeyError("from the block")


# -- wrappers of bound methods ------------------------------------------------------------------


class Account:
    """An account."""

    def balance(self, currency: str) -> str:
        """The balance."""
        return f"10 {currency}"

    async def abalance(self, currency: str) -> str:
        """The balance, async."""
        return f"10 {currency}"


@pytest.mark.parametrize("direction", ["sync_to_async", "async_to_sync"])
def test_wrappers_of_bound_methods_keep_self_and_the_wrapped_attributes(direction: str) -> None:
    account = Account()
    method: Any = account.balance if direction == "sync_to_async" else account.abalance
    ours: Any = (sync_to_async if direction == "sync_to_async" else async_to_sync)(method)
    theirs: Any = getattr(asgiref.sync, direction)(method)
    assert ours.__self__ is account
    assert theirs.__self__ is account
    # And what functools.wraps copies (asgiref's SyncToAsync copies the same; its AsyncToSync
    # copies only ``__self__``).
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        assert getattr(ours, name) == getattr(method, name), name
    assert ours.__wrapped__ == method
    # A plain function has no __self__, and neither has either wrapper of it.
    assert not hasattr(sync_to_async(functools.partial(str, 1)), "__self__")
    assert not hasattr(asgiref.sync.sync_to_async(functools.partial(str, 1)), "__self__")


def test_a_wrapped_bound_method_still_runs_on_its_instance() -> None:
    account = Account()

    async def main() -> str:
        return await sync_to_async(account.balance)("EUR")

    assert asyncio.run(main()) == "10 EUR"
    assert async_to_sync(account.abalance)("USD") == "10 USD"


# -- the "Coming from asgiref" table ------------------------------------------------------------

# asgiref's shims over inspect/asyncio, imported from asgiref.sync by Django: public names of
# asgiref.sync although their objects come from the standard library on some Pythons.
_SHIMS = {"iscoroutinefunction", "markcoroutinefunction"}


def _public_names(module: types.ModuleType) -> dict[str, str]:
    """Public names of ``module`` that are asgiref's, each with the module that defines it."""
    names = {}
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        home = getattr(value, "__module__", None) or ""
        if home.startswith("asgiref") or name in _SHIMS:
            names[name] = home
    return names


def _table() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "concurrency.md").read_text(encoding="utf-8")
    section = text.split("## Coming from asgiref", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= {"-", " ", ":"}:
            rows.append((cells[0], cells[1]))
    return rows


@pytest.mark.parametrize("module", [asgiref.sync, asgiref.wsgi], ids=lambda m: m.__name__)
def test_the_table_lists_every_public_name_of_asgiref(module: types.ModuleType) -> None:
    firsts = " ".join(first for first, _ in _table())
    missing = [
        name
        for name, home in _public_names(module).items()
        if f"`{module.__name__}.{name}`" not in firsts and f"`{home}.{name}`" not in firsts
    ]
    assert not missing, f"docs/concurrency.md 'Coming from asgiref' lacks {missing}"


def test_the_crossgate_names_in_the_table_exist() -> None:
    named = set()
    for _, second in _table():
        named.update(re.findall(r"`(crossgate(?:\.\w+)+)", second))
    assert named
    for dotted in sorted(named):
        module_name, _, attribute = dotted.rpartition(".")
        try:
            target: Any = importlib.import_module(dotted)
        except ImportError:
            target = getattr(importlib.import_module(module_name), attribute, None)
        assert target is not None, f"{dotted} named in the table does not exist"
