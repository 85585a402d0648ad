"""Mount prefixes and the paths a mounted application sees. Pure.

The ASGI spec (2.x) has ``path`` hold the whole path, ``root_path`` (WSGI's ``SCRIPT_NAME``)
included. So a mount leaves ``path`` and ``raw_path`` alone and moves its prefix into
``root_path``: ``/legacy/cart`` under ``/legacy`` reaches the child with ``root_path='/legacy'``
and ``path='/legacy/cart'``. An older server's ``path`` without its ``root_path`` (hypercorn) is
matched whole and handed on in the current form. Prefixes match at segment boundaries only:
``/app`` never serves ``/application`` (starlette #2599; asgiref and a2wsgi cut it to
``lication``).
"""

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
    """Where the part of ``path`` below ``root_path`` begins: ``len(root_path)`` (without a
    trailing ``/``) when ``path`` starts with it at a segment boundary, else 0 (an older server's
    ``path``, without the root)."""
    root = root_path.rstrip("/")
    size = len(root)
    if size and path.startswith(root) and (len(path) == size or path[size] == "/"):
        return size
    return 0


# Distinct root_path values a table compiles before it starts over: a router meets one or two,
# but a root_path can come from a proxy header.
MAX_ROOTS = 16

# What `MountTable.route` returns: (value, child root_path, child path, child raw_path), the
# last two None when they stay as they are.
Routed = tuple[T, str, str | None, bytes | None]


class _Compiled(Generic[T]):
    """A `MountTable` specialised for one ``root_path``: the full prefixes (root + mount
    prefix) grouped by where their first segment ends, with the answer for each built in."""

    __slots__ = ("groups", "offset", "root")

    def __init__(
        self, root: str, groups: dict[int, tuple[tuple[str, int, tuple[T, str, None, None]], ...]]
    ) -> None:
        self.root = root
        self.offset = len(root)
        self.groups = {
            self.offset + head: tuple(
                (root + prefix, self.offset + length, (answer[0], root + prefix, None, None))
                for prefix, length, answer in group
            )
            for head, group in groups.items()
        }


class MountTable(Generic[T]):
    """Mount prefixes, each with the value it routes to, matched longest first.

    Specialised once for each ``root_path`` it meets, with prefixes grouped by where their
    first segment ends, a request costs one `str.find`, one dict lookup and a `str.startswith`
    per prefix sharing that segment; nothing is allocated.

    Raises:
        ValueError: two entries have the same prefix (after `normalize_prefix`), or a prefix
            is invalid.
        TypeError: a prefix is not a `str`.
    """

    __slots__ = ("_compiled", "_entries", "_groups", "_prefixes", "_top")

    def __init__(self, mounts: Iterable[tuple[str, T]]) -> None:
        seen: dict[str, T] = {}
        for prefix, value in mounts:
            normal = normalize_prefix(prefix)
            if normal in seen:
                raise ValueError(f"two mounts share the prefix {normal!r}")
            seen[normal] = value
        groups: dict[int, list[tuple[str, int, tuple[T, str, None, None]]]] = {}
        self._entries: dict[str, tuple[str, T]] = {}
        for prefix, value in seen.items():
            end = prefix.find("/", 1)
            head = len(prefix) if end < 0 else end
            groups.setdefault(head, []).append((prefix, len(prefix), (value, prefix, None, None)))
            self._entries[prefix] = (prefix, value)
        # First-segment length -> (prefix, its length, the answer under an empty root_path),
        # longest prefix first.
        self._groups = {
            head: tuple(sorted(entries, key=lambda entry: entry[1], reverse=True))
            for head, entries in groups.items()
        }
        self._prefixes = tuple(sorted(seen, key=len, reverse=True))
        self._top = _Compiled("", self._groups)
        self._compiled: dict[str, _Compiled[T]] = {}

    def __len__(self) -> int:
        return len(self._prefixes)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The prefixes, longest first (the order in which they win)."""
        return self._prefixes

    def lookup(self, root_path: str, path: str) -> tuple[str, T] | None:
        """The ``(prefix, value)`` of the longest prefix ``path`` is under, or ``None``.

        ``path`` and ``root_path`` are the scope's; the prefix is matched against the part of
        ``path`` below ``root_path`` (see `root_offset`), at a segment boundary.
        """
        offset = root_offset(root_path, path) if root_path else 0
        end = path.find("/", offset + 1)
        size = len(path)
        for prefix, length, _ in self._groups.get((size if end < 0 else end) - offset, ()):
            stop = offset + length
            if path.startswith(prefix, offset) and (size == stop or path[stop] == "/"):
                return self._entries[prefix]
        return None

    def route(self, root_path: str | None, path: str, raw_path: bytes | None) -> Routed[T] | None:
        """Match and compute the child scope's paths in one step (the router's hot path).

        Returns `child_paths`'s answer after the value, ``path`` and ``raw_path`` ``None`` when
        they stay as they are; ``None`` when no prefix matches.

        Raises:
            PeerProtocolError: as `child_paths`.
        """
        if root_path:
            table = self._compiled.get(root_path)
            if table is None:
                table = self._compile(root_path)
        else:
            table = self._top
        offset = table.offset
        end = path.find("/", offset + 1)
        size = len(path)
        group = table.groups.get(size if end < 0 else end)
        if group is not None:
            for full, stop, answer in group:
                # The full prefix starts with root_path + "/": a match is also the proof that
                # path includes root_path, as the current spec has it.
                if path.startswith(full) and (size == stop or path[stop] == "/"):
                    return answer
        if not offset:
            return None
        root = table.root
        if path.startswith(root) and (size == offset or path[offset] == "/"):
            return None  # under root_path, but no mount matches
        # An older server's path, root_path left out: match it whole and hand it on in the
        # current form.
        found = self.lookup("", path)
        if found is None:
            return None
        return found[1], *child_paths(root, path, raw_path, found[0])

    def _compile(self, root_path: str) -> _Compiled[T]:
        if len(self._compiled) >= MAX_ROOTS:
            self._compiled.clear()
        table = self._compiled[root_path] = _Compiled(root_path.rstrip("/"), self._groups)
        return table


def child_paths(
    root_path: str, path: str, raw_path: bytes | None, prefix: str
) -> tuple[str, str, bytes | None]:
    """The ``(root_path, path, raw_path)`` of the scope a mount at ``prefix`` hands its app.

    ``prefix`` is what `MountTable.lookup` returned. The child's ``root_path`` is the parent's
    plus ``prefix``; ``path`` and ``raw_path`` are kept, but an older server's ``path`` gets the
    parent's ``root_path`` put in front, in ``raw_path`` too (percent-encoded, as uvicorn would).

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
    """The ``Location`` that adds the missing ``/`` to a request for a bare mount prefix.

    Built from the raw path when there is one, so the client gets back the bytes it sent.
    Other bytes than RFC 3986 path and query characters are escaped (no CR or LF reaches the
    header), and a leading ``//`` is collapsed: it would name another host (section 4.2).

    Raises:
        PeerProtocolError: ``root_path`` or ``path`` holds a lone surrogate.
    """
    root = root_path.rstrip("/")
    if raw_path:
        # Some servers put the query in raw_path; the ASGI spec says it is not there.
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
    """Encode a decoded scope string back to its bytes (undoing ``surrogateescape`` too).

    Raises:
        PeerProtocolError: ``text`` holds a lone surrogate.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise PeerProtocolError(f"the scope's {what} is not valid Unicode: {text!r}") from None


def _quote(text: str, what: str) -> bytes:
    return quote_from_bytes(scope_bytes(text, what), safe=PATH_SAFE).encode("ascii")
