"""The base of the sans-I/O state machines' enums (phases and events). Pure."""

from __future__ import annotations

import enum

__all__ = ["IdentityEnum"]


class IdentityEnum(enum.Enum):
    """An enum whose members hash by identity.

    Members are singletons, so identity is equality; hashing in C instead of `enum.Enum`'s
    Python ``__hash__`` keeps Python calls off the request path, where each transition looks a
    ``(phase, event)`` pair up in a table.
    """

    __hash__ = object.__hash__
