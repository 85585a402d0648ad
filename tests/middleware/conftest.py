"""Fixtures for the middleware tests: the side a table case runs on, and the thread-leak check."""

from __future__ import annotations

import pytest

from tests.adapters.conftest import thread_leak_check
from tests.middleware._sides import SIDES

__all__ = ["side", "thread_leak_check"]


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> str:
    """``"asgi"`` or ``"wsgi"``: every test taking it runs once per side (see `_sides.run`)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_thread_left(thread_leak_check: None) -> None:
    """Every test here fails if it leaves a thread running (a WSGIToASGI pool not closed)."""
