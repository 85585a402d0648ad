"""The wrapped signatures survive ``mypy --strict`` (this file is type-checked with the tests).

Each wrong call below carries a ``type: ignore`` with the error code it must produce. mypy runs
with ``warn_unused_ignores`` (part of ``--strict``), so if the helpers lost the signature (typed
as ``Callable[..., Any]``, say), the ignores would go unused and mypy would fail. The calls run
too, so the file is also an ordinary test of the forms it types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, assert_type

import pytest

from crossgate.concurrency import async_to_sync, sync_to_async
from tests.concurrency.conftest import run


def scale(value: int, *, factor: float = 2.0) -> float:
    return value * factor


async def ascale(value: int, *, factor: float = 2.0) -> float:
    await asyncio.sleep(0)
    return value * factor


class Meter:
    def read(self, unit: str) -> str:
        return f"3 {unit}"

    async def aread(self, unit: str) -> str:
        return f"4 {unit}"


def test_sync_to_async_keeps_parameters_and_return_type() -> None:
    wrapped = sync_to_async(scale)
    decorated = sync_to_async(thread_sensitive=True)(scale)

    async def main() -> None:
        assert_type(await wrapped(1, factor=3.0), float)
        assert_type(await decorated(2), float)
        assert_type(await sync_to_async(Meter().read)("m"), str)
        with pytest.raises(TypeError):
            await wrapped("one")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await wrapped(1, factr=3.0)  # type: ignore[call-arg]

    run(main)
    coroutine: Coroutine[Any, Any, float] = wrapped(1)
    coroutine.close()


def test_async_to_sync_keeps_parameters_and_return_type() -> None:
    wrapped = async_to_sync(ascale)
    decorated = async_to_sync(timeout=5)(ascale)
    assert_type(wrapped(1, factor=3.0), float)
    assert_type(decorated(2), float)
    assert_type(async_to_sync(Meter().aread)("s"), str)
    with pytest.raises(TypeError):
        wrapped("one")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wrapped(1, factr=3.0)  # type: ignore[call-arg]
