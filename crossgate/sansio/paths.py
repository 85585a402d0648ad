"""Mount prefixes and the paths a mounted application sees. Pure: no threads, no asyncio, no I/O.

The rules come from the ASGI HTTP and WebSocket connection scopes (spec 2.x):

* ``path`` is the whole request path, ``root_path`` included, and ``raw_path`` is its undecoded
  bytes. uvicorn builds both that way (``root_path + path``).
* ``root_path`` is "the root path this application is mounted at", the equivalent of WSGI's
  ``SCRIPT_NAME``.

So a mount leaves ``path`` and ``raw_path`` alone and moves the prefix into ``root_path``:
``/legacy/cart`` under a mount at ``/legacy`` reaches the child with ``root_path='/legacy'`` and
``path='/legacy/cart'``, and a WSGI child sees ``SCRIPT_NAME='/legacy'`` and
``PATH_INFO='/cart'`` (`crossgate.sansio.environ.split_script_name`).

Older servers (hypercorn among them) send a ``path`` without the ``root_path`` in it. Such a
path is matched whole, and the child gets it in the current form, ``root_path`` in front, so the
child never has to guess which convention its parent followed.

Prefixes match at segment boundaries only: a mount at ``/app`` serves ``/app`` and ``/app/x``,
never ``/application`` (starlette #2599 and the WSGI adapters of asgiref and a2wsgi cut
``/application`` to ``lication``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar
from urllib.parse import quote, quote_from_bytes

from crossgate.exceptions import PeerProtocolError

__all__ = [
    "MountTable",
    "child_paths",
    "normalize_prefix",
    "root_offset",
    "slash_redirect_location",
]

T = TypeVar("T")

# The characters build_environ leaves unescaped when it rebuilds a raw path (RFC 3986 section
# 3.3, pchar minus the ones that would change the meaning of a path).
_PATH_SAFE = "/;=,~!$&'()*+:@"
# What a raw path or query keeps as it is in a Location: RFC 3986 pchar (and "/", "?") plus
# complete or not, "%" escapes the client already sent.
_RAW_SAFE = _PATH_SAFE + "%"
_QUERY_SAFE = _RAW_SAFE + "?"


def normalize_prefix(prefix: str) -> str:
    """Check a mount prefix and return it in the form the router matches: no trailing ``/``.

    A prefix is a decoded path, as the scope's ``path`` is: ``"/café"``, not ``"/caf%C3%A9"``.

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
    """Where the part of ``path`` below ``root_path`` begins.

    ``len(root_path)`` (without a trailing ``/``) when ``path`` starts with ``root_path`` at a
    segment boundary, as the current ASGI spec has it; 0 when it does not, which is an older
    server's ``path`` with the root already removed (kept whole, as
    `crossgate.sansio.environ.split_script_name` keeps it).
    """
    root = root_path.rstrip("/")
    size = len(root)
    if size and path.startswith(root) and (len(path) == size or path[size] == "/"):
        return size
    return 0


# A compiled table serves at most this many distinct root_path values before it starts over. A
# router meets one or two (the server's --root-path, its own mount point); the bound is there
# because a root_path can come from a proxy header a middleware trusted.
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

    Built once, when the router is built, and specialised once for each ``root_path`` it meets
    (normally one): the prefixes with that root in front, grouped by where their first segment
    ends, each with its answer ready. A request then costs one `str.find` for the end of its
    first path segment, one dictionary lookup, and a `str.startswith` per prefix sharing that
    segment (longest first, so ``/api/v2`` wins over ``/api``); nothing is allocated.

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

        Returns ``(value, root_path, path, raw_path)`` for the mounted app, as `child_paths`
        gives them, except that ``path`` and ``raw_path`` are ``None`` when they stay as they
        are (always, but for an older server's path); ``None`` when no prefix matches.

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

    ``prefix`` is one `MountTable.lookup` returned for this ``root_path`` and ``path``. The
    child's ``root_path`` is the parent's plus ``prefix``; ``path`` and ``raw_path`` are kept
    (ASGI spec: ``path`` already includes every ``root_path``). A ``path`` from an older server,
    without the parent's ``root_path`` in it, gets it put in front, in ``raw_path`` too
    (percent-encoded from UTF-8, as uvicorn would have sent it), so both stay consistent.

    Raises:
        PeerProtocolError: ``root_path`` holds a lone surrogate, which no server decoding
            bytes off the wire can produce.
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

    Built from the raw path when the server gave one, so the client gets back the bytes it
    sent (percent-escapes included) plus the slash and the query string. Bytes outside the
    RFC 3986 path and query characters are percent-encoded, so CR, LF or NUL from the request
    never reach the header, and a path starting with ``//`` is collapsed to one ``/``: as a
    ``Location`` it would name another host (RFC 3986 section 4.2).

    Raises:
        PeerProtocolError: ``root_path`` or ``path`` holds a lone surrogate.
    """
    root = root_path.rstrip("/")
    if raw_path:
        # Some servers put the query in raw_path; the ASGI spec says it is not there.
        target = quote_from_bytes(raw_path.partition(b"?")[0], safe=_RAW_SAFE).encode("ascii")
        if root and not root_offset(root, path):
            target = _quote(root, "root_path") + target
    else:
        full = path if not root or root_offset(root, path) else root + path
        target = _quote(full, "path")
    location = b"/" + target.lstrip(b"/") + b"/"
    if query_string:
        location += b"?" + quote_from_bytes(query_string, safe=_QUERY_SAFE).encode("ascii")
    return location


def _quote(text: str, what: str) -> bytes:
    try:
        quoted = quote(text, safe=_PATH_SAFE, encoding="utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        raise PeerProtocolError(f"the scope's {what} is not valid Unicode: {text!r}") from None
    return quoted.encode("ascii")
