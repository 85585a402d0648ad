"""asgiref ``Local`` values across crossgate's thread switches, carried as asgiref carries them.

Django keeps the active language, time zone, script prefix and urlconf in asgiref ``Local``s,
which store their values in a contextvar. Up to asgiref 3.11 that value is a plain dict, and a
copied context carries it to another thread like any contextvar. Since asgiref 3.12 it is
tagged with the thread that owns it, and a thread sees only storage tagged with its own id (so
that a thread which merely *inherited* a context, as threads do on free-threaded Python 3.14,
sees nothing). asgiref's helpers re-tag ("re-home") the storage to the new thread each time
they deliberately move a context there: at the start of the work on the new thread, and when
the changes come back to the caller (``asgiref.sync._restore_context``). crossgate's helpers
move contexts at the same points and must re-home there too, or Django code run through them
sees the default language, prefix, time zone and urlconf.

asgiref has no public or documented way to re-home a ``Local``: the storage class and the
function that re-tags it (``asgiref.local._Storage``, ``asgiref.local._rehome``) are internal.
So the only use of them is `_rehomer` below, behind a version check; a test fails on an asgiref
version nobody has checked this against. crossgate never imports asgiref: it looks only when
the application already loaded ``asgiref.local`` (Django does).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["CHECKED", "adopt_locals", "asgiref_version", "rehomed", "rehomer"]

_log = logging.getLogger("crossgate.concurrency")

# asgiref minor versions whose Local storage crossgate was checked against, by a test comparing
# crossgate's helpers with asgiref's own (tests/concurrency/test_asgiref_locals.py). 3.11 needs
# nothing; 3.12 and 3.13 tag the storage with its thread.
CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})
_TAGGED_SINCE = (3, 12)

Rehome = Callable[[Any], Any]


def asgiref_version() -> tuple[int, ...] | None:
    """The loaded asgiref's version as integers (``(3, 13, 0)``), or ``None`` if not loaded."""
    module = sys.modules.get("asgiref")
    text = getattr(module, "__version__", None)
    if not isinstance(text, str):
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


# Once per asgiref.local module (a stand-in module in the tests is a new key): a sync_to_async
# call asks two or three times, and the version parse and look-ups cost 0.8 us each time where
# the cached answer costs 0.1 us (about 2 % of an 84 us call, measured with asgiref loaded).
@functools.lru_cache(maxsize=1)
def _rehomer(local: ModuleType) -> tuple[type, Rehome] | None:
    # The one place that touches asgiref internals (see the module docstring).
    version = asgiref_version()
    if version is not None and version[:2] < _TAGGED_SINCE:
        return None  # a plain dict: a copied context carries it as it is
    storage_type = getattr(local, "_Storage", None)
    rehome = getattr(local, "_rehome", None)
    if isinstance(storage_type, type) and callable(rehome):
        # A version not in CHECKED that still has both is taken on trust; the test named
        # above fails on it until someone has compared asgiref's re-homing with ours.
        return storage_type, rehome
    _log.warning(
        "asgiref %s stores Local values in a way crossgate does not know: Django's language, "
        "time zone and script prefix may be lost across crossgate's sync_to_async and "
        "async_to_sync; please report it",
        ".".join(map(str, version or ())) or "(unknown version)",
    )
    return None


def rehomer() -> tuple[type, Rehome] | None:
    """asgiref's Local storage type and the function re-tagging it, if the loaded one tags."""
    local = sys.modules.get("asgiref.local")
    return None if local is None else _rehomer(local)


def adopt_locals() -> None:
    """Hand the asgiref ``Local`` storage of the current context to the current thread.

    Call it inside a context that was just moved to this thread (in ``ctx.run`` on a worker
    thread, at the start of a task made in another thread's context), where asgiref's helpers
    re-home: every ``Local``'s storage found there is re-tagged, whichever thread it had.
    """
    found = rehomer()
    if found is None:
        return
    storage_type, rehome = found
    for var, value in list(contextvars.copy_context().items()):
        if isinstance(value, storage_type):
            var.set(rehome(value))


def rehomed(value: object, found: tuple[type, Rehome] | None) -> object:
    """``value`` re-tagged for the current thread if it is asgiref ``Local`` storage."""
    if found is not None and isinstance(value, found[0]):
        return found[1](value)
    return value
