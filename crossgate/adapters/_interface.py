"""Telling ASGI apps from WSGI apps: the one rule of the routers and both adapters."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Literal

__all__ = ["check_app", "describe", "is_asgi"]


def is_asgi(app: object) -> bool:
    """Whether ``app`` is taken for an ASGI application (otherwise: WSGI).

    The rule is "ASGI or WSGI?" in docs/routing.md. A plain function that returns a coroutine
    looks like WSGI: wrap it in `crossgate.routing.asgi`.
    """
    marker = getattr(app, "__crossgate_asgi__", None)
    if marker is not None:
        return bool(marker)
    if _is_coroutine_function(app):
        return True
    if inspect.isclass(app):
        return False
    cls = type(app)
    if isinstance(inspect.getattr_static(cls, "__call__", None), staticmethod):
        # Not bound: the call is the function inside (binding a partial warns on 3.13).
        return _is_coroutine_function(cls.__call__)
    call = getattr(cls, "__call__", None)  # noqa: B004 - special methods are on the type
    bind = getattr(type(call), "__get__", None)
    if bind is not None:
        # A "__call__" slot binds to what the instance stores (sentry's SentryAsgiMiddleware).
        try:
            call = bind(call, app, cls)
        except AttributeError:
            return False  # an empty __call__ slot: calling it would fail
    return _is_coroutine_function(call)


def _is_coroutine_function(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # Before 3.12, asgiref's markcoroutinefunction (Django's) sets a marker only asyncio reads.
    return sys.version_info < (3, 12) and asyncio.iscoroutinefunction(obj)


def describe(app: object) -> str:
    """``module.qualname`` of a function or class, or of an instance's class."""
    named = app if inspect.isfunction(app) or inspect.isclass(app) else type(app)
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', named)}"


def check_app(app: object, wanted: Literal["asgi", "wsgi"], interface: str) -> None:
    """Raise TypeError unless ``app`` is a ``wanted`` app (`is_asgi` if ``interface="auto"``)."""
    kind, other, is_other = (
        ("ASGI", "WSGI", "a WSGI") if wanted == "asgi" else ("WSGI", "ASGI", "an ASGI")
    )
    adapter, wrapper = f"{kind}To{other}", f"{other}To{kind}"
    if interface not in ("auto", wanted):
        raise ValueError(f"{adapter}: interface must be 'auto' or {wanted!r}, not {interface!r}")
    if isinstance(app, str):
        raise TypeError(
            f"{adapter} takes the {kind} application object, not its name {app!r}: import it "
            "and pass the object (crossgate does not import apps by name)"
        )
    if not callable(app):
        raise TypeError(
            f"{adapter} takes a {kind} application, which is callable; got {type(app).__name__}"
        )
    if interface == wanted or is_asgi(app) == (wanted == "asgi"):
        return
    raise TypeError(
        f"{adapter} serves {kind} applications, and {describe(app)} is {is_other} application "
        f"(crossgate.routing.is_asgi): give it to the {other} server as it is, or wrap it in "
        f"{wrapper} for {kind} servers. If it is {kind} in fact, pass interface={wanted!r}."
    )
