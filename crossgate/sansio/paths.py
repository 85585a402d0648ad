"""Mount prefixes and the paths a mounted application sees (docs/routing.md has the rules). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar
from urllib.parse import quote_from_bytes

from crossgate.exceptions import PeerProtocolError

__all__ = [
    "MountTable",
    "child_paths",
    "normalize_prefix",
    "root_offset",
    "slash_redirect_location",
]

T = TypeVar("T")

# RFC 3986 section 3.3: what a path holds unescaped (pchar and "/"); a raw path keeps its "%".
PATH_SAFE = "/;=,~!$&'()*+:@"
RAW_SAFE = PATH_SAFE + "%"
QUERY_SAFE = RAW_SAFE + "?"

MAX_ROOTS = 16  # root_path values a table compiles before it starts over

# (value, child root_path, child path, child raw_path), the last two None when they stay.
Routed = tuple[T, str, str | None, bytes | None]
# Where a prefix's first segment ends -> (full prefix, where it ends, the answer), longest first.
_Groups = dict[int, tuple[tuple[str, int, Routed[T]], ...]]


def normalize_prefix(prefix: str) -> str:
    """Check a decoded mount prefix (``"/café"``) and return it without a trailing ``/``.

    Raises:
        TypeError: ``prefix`` is not a `str`.
        ValueError: ``prefix`` does not start with ``/``, or is ``/`` itself (the app that
            serves every other path is the router's ``default``).
    """
    if not isinstance(prefix, str):
        raise TypeError(f"a mount prefix is a str, not {type(prefix).__name__}")
    if not prefix.startswith("/"):
        raise ValueError(f"a mount prefix starts with '/': {prefix!r}")
    stripped = prefix.rstrip("/")
    if not stripped:
        raise ValueError(
            f"a mount prefix names a path below '/': {prefix!r}; pass the app that serves "
            "everything else as the router's default instead"
        )
    return stripped


def root_offset(root_path: str, path: str) -> int:
    """Where the part of ``path`` below ``root_path`` begins; 0 for a ``path`` without the root."""
    root = root_path.rstrip("/")
    size = len(root)
    if size and path.startswith(root) and (len(path) == size or path[size] == "/"):
        return size
    return 0


class MountTable(Generic[T]):
    """Mount prefixes, each with the value it routes to, matched longest first.

    Raises:
        ValueError: two entries have the same prefix, or a prefix is invalid.
        TypeError: a prefix is not a `str`.
    """

    __slots__ = ("_compiled", "_entries", "_prefixes", "_top")

    def __init__(self, mounts: Iterable[tuple[str, T]]) -> None:
        seen: dict[str, T] = {}
        for prefix, value in mounts:
            normal = normalize_prefix(prefix)
            if normal in seen:
                raise ValueError(f"two mounts share the prefix {normal!r}")
            seen[normal] = value
        self._prefixes = tuple(sorted(seen, key=len, reverse=True))
        self._entries = {prefix: (prefix, value) for prefix, value in seen.items()}
        groups: dict[int, list[tuple[str, int, Routed[T]]]] = {}
        for prefix in self._prefixes:
            end = prefix.find("/", 1)
            head = len(prefix) if end < 0 else end
            answer = (seen[prefix], prefix, None, None)
            groups.setdefault(head, []).append((prefix, len(prefix), answer))
        self._top: tuple[str, _Groups[T]] = ("", {h: tuple(g) for h, g in groups.items()})
        self._compiled: dict[str, tuple[str, _Groups[T]]] = {}

    def __len__(self) -> int:
        return len(self._prefixes)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The prefixes, longest first (the order in which they win)."""
        return self._prefixes

    def lookup(self, root_path: str, path: str) -> tuple[str, T] | None:
        """The ``(prefix, value)`` of the longest prefix ``path`` below ``root_path`` is under."""
        offset = root_offset(root_path, path) if root_path else 0
        end = path.find("/", offset + 1)
        size = len(path)
        for prefix, length, _ in self._top[1].get((size if end < 0 else end) - offset, ()):
            stop = offset + length
            if path.startswith(prefix, offset) and (size == stop or path[stop] == "/"):
                return self._entries[prefix]
        return None

    def route(self, root_path: str | None, path: str, raw_path: bytes | None) -> Routed[T] | None:
        """The value and `child_paths` (``path`` and ``raw_path`` ``None`` when they stay).

        Raises:
            PeerProtocolError: as `child_paths`.
        """
        if not root_path:
            root, groups = self._top
        elif (compiled := self._compiled.get(root_path)) is not None:
            root, groups = compiled
        else:
            if len(self._compiled) >= MAX_ROOTS:
                self._compiled.clear()
            root = root_path.rstrip("/")
            offset = len(root)
            groups = {
                offset + head: tuple(
                    (root + prefix, offset + stop, (answer[0], root + prefix, None, None))
                    for prefix, stop, answer in group
                )
                for head, group in self._top[1].items()
            }
            self._compiled[root_path] = root, groups
        offset = len(root)
        end = path.find("/", offset + 1)
        size = len(path)
        for full, stop, answer in groups.get(size if end < 0 else end, ()):
            # The full prefix starts with root_path + "/": a match proves path includes it.
            if path.startswith(full) and (size == stop or path[stop] == "/"):
                return answer
        if not offset or (path.startswith(root) and (size == offset or path[offset] == "/")):
            return None
        # An older server's path, root_path left out: match it whole, hand on the current form.
        found = self.lookup("", path)
        if found is None:
            return None
        return found[1], *child_paths(root, path, raw_path, found[0])


def child_paths(
    root_path: str, path: str, raw_path: bytes | None, prefix: str
) -> tuple[str, str, bytes | None]:
    """The ``(root_path, path, raw_path)`` of the scope a mount at ``prefix`` hands its app.

    Raises:
        PeerProtocolError: ``root_path`` holds a lone surrogate.
    """
    root = root_path.rstrip("/")
    if not root or root_offset(root, path):
        return root + prefix, path, raw_path
    if raw_path is not None:
        raw_path = _quote(root, "root_path") + raw_path
    return root + prefix, root + path, raw_path


def slash_redirect_location(
    root_path: str, path: str, raw_path: bytes | None, query_string: bytes
) -> bytes:
    """The ``Location`` that adds the missing ``/`` to a bare mount prefix, escaped (RFC 3986),
    a leading ``//`` (another host) collapsed.

    Raises:
        PeerProtocolError: ``root_path`` or ``path`` holds a lone surrogate.
    """
    root = root_path.rstrip("/")
    if raw_path:
        # Some servers put the query in raw_path; the ASGI spec excludes it.
        target = quote_from_bytes(raw_path.partition(b"?")[0], safe=RAW_SAFE).encode("ascii")
        if root and not root_offset(root, path):
            target = _quote(root, "root_path") + target
    else:
        full = path if not root or root_offset(root, path) else root + path
        target = _quote(full, "path")
    location = b"/" + target.lstrip(b"/") + b"/"
    if query_string:
        location += b"?" + quote_from_bytes(query_string, safe=QUERY_SAFE).encode("ascii")
    return location


def scope_bytes(text: str, what: str) -> bytes:
    """Encode a decoded scope string back to its bytes.

    Raises:
        PeerProtocolError: ``text`` holds a lone surrogate.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise PeerProtocolError(f"the scope's {what} is not valid Unicode: {text!r}") from None


def _quote(text: str, what: str) -> bytes:
    return quote_from_bytes(scope_bytes(text, what), safe=PATH_SAFE).encode("ascii")
