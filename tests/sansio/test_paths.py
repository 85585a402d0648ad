"""Mount prefixes and child paths (``crossgate.sansio.paths``), table-driven, plus properties.

The environ a mounted WSGI app sees is checked end to end here: the child scope from
`child_paths` goes through the foundation's `build_environ`, so each row states the
``SCRIPT_NAME`` and ``PATH_INFO`` a Flask or Django app gets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.environ import build_environ
from crossgate.sansio.paths import (
    MAX_ROOTS,
    MountTable,
    child_paths,
    normalize_prefix,
    root_offset,
    slash_redirect_location,
)

# --- normalize_prefix ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("/legacy", "/legacy"),
        ("/legacy/", "/legacy"),
        ("/legacy//", "/legacy"),
        ("/a/b", "/a/b"),
        ("/café", "/café"),
    ],
)
def test_prefix_loses_its_trailing_slash(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "error", "words"),
    [
        ("legacy", ValueError, "starts with '/'"),
        ("", ValueError, "starts with '/'"),
        ("/", ValueError, "default"),
        ("//", ValueError, "default"),
        (b"/legacy", TypeError, "bytes"),
    ],
)
def test_bad_prefix_is_refused_with_a_reason(
    prefix: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        normalize_prefix(prefix)


# --- root_offset ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_path", "path", "offset"),
    [
        ("", "/x", 0),
        ("/app", "/app/x", 4),
        ("/app", "/app", 4),
        ("/app/", "/app/x", 4),
        # Not at a segment boundary: an older server's path without the root (starlette #2599).
        ("/app", "/application", 0),
        ("/product", "/products/all", 0),
        ("/app", "/x", 0),
        ("/", "/x", 0),
    ],
)
def test_root_offset(root_path: str, path: str, offset: int) -> None:
    assert root_offset(root_path, path) == offset


# --- MountTable ---------------------------------------------------------------------------------


TABLE = MountTable([("/api", "api"), ("/api/v2", "v2"), ("/app", "app"), ("/café", "cafe")])


@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        ("", "/api", "api"),
        ("", "/api/", "api"),
        ("", "/api/users", "api"),
        # Longest prefix first, whatever order the mounts were given in.
        ("", "/api/v2", "v2"),
        ("", "/api/v2/users", "v2"),
        ("", "/api/v22", "api"),
        # Segment boundaries only.
        ("", "/application", None),
        ("", "/apix", None),
        ("", "/ap", None),
        ("", "/", None),
        ("", "/x/api", None),
        ("", "/café/menu", "cafe"),
        # The prefix is matched below root_path when path includes it (ASGI spec) ...
        ("/root", "/root/api/x", "api"),
        ("/root/", "/root/api/x", "api"),
        ("/root", "/root", None),
        # ... and against the whole path when an older server left the root out.
        ("/root", "/api/x", "api"),
        # "/root" + "/api" must not be read into "/rootapi".
        ("/root", "/rootapi", None),
    ],
)
def test_lookup(root_path: str, path: str, expected: str | None) -> None:
    found = TABLE.lookup(root_path, path)
    assert (found[1] if found else None) == expected


def test_lookup_returns_the_prefix_matched() -> None:
    assert TABLE.lookup("", "/api/v2/x") == ("/api/v2", "v2")


def test_table_order_is_longest_first() -> None:
    assert TABLE.prefixes == ("/api/v2", "/café", "/api", "/app")
    assert len(TABLE) == 4


def test_duplicate_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="share the prefix '/api'"):
        MountTable([("/api", 1), ("/api/", 2)])


def test_lookup_allocates_nothing_new() -> None:
    # The matched entry is built once with the table, not per request.
    assert TABLE.lookup("", "/api/x") is TABLE.lookup("", "/api/y")


# --- child paths and the environ the mounted app sees --------------------------------------------


def scope_for(root_path: str, path: str, raw_path: bytes | None) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"example.org")],
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    return scope


def mounted_environ(
    root_path: str, path: str, raw_path: bytes | None, *prefixes: str
) -> tuple[dict[str, Any], tuple[str, str, bytes | None]]:
    """Route a scope through nested mounts; the last child's paths and WSGI environ."""
    paths = (root_path, path, raw_path)
    for prefix in prefixes:
        table = MountTable([(prefix, None)])
        found = table.lookup(paths[0], paths[1])
        assert found is not None, (prefix, paths)
        paths = child_paths(paths[0], paths[1], paths[2], found[0])
    return build_environ(scope_for(*paths)), paths


# Each row: what the parent scope held, the mounts on the way, and what the mounted app must get.
# The peer bug each row comes from is named in the id.
PEER_CASES = [
    pytest.param(
        # starlette #1336: under `uvicorn --root-path /foo`, a request for /foo/sub/bar has
        # path='/foo/sub/bar' (path includes root_path); starlette matched mounts as if the
        # root had been stripped, and the mounted app got the wrong split.
        ("/foo", "/foo/sub/bar", b"/foo/sub/bar", ("/sub",)),
        ("/foo/sub", "/foo/sub/bar", b"/foo/sub/bar", "/foo/sub", "/bar"),
        id="starlette-1336-root_path-and-mount",
    ),
    pytest.param(
        # starlette #2352 (0.33) made path include root_path but stopped extending root_path
        # for mounted apps, so a mounted ASGI app (or a2wsgi) could not know its own prefix.
        ("", "/app/x", b"/app/x", ("/app",)),
        ("/app", "/app/x", b"/app/x", "/app", "/x"),
        id="starlette-2352-child-root_path-is-extended",
    ),
    pytest.param(
        # a2wsgi #41: Flask mounted at /flask answered 404 to /flask, seeing PATH_INFO='/flask'
        # with SCRIPT_NAME=''. The bare prefix must give SCRIPT_NAME='/flask' and PATH_INFO=''.
        ("", "/flask", b"/flask", ("/flask",)),
        ("/flask", "/flask", b"/flask", "/flask", ""),
        id="a2wsgi-41-bare-mount-prefix",
    ),
    pytest.param(
        ("", "/flask/", b"/flask/", ("/flask",)),
        ("/flask", "/flask/", b"/flask/", "/flask", "/"),
        id="a2wsgi-41-mount-prefix-with-slash",
    ),
    pytest.param(
        # starlette #2599: with root_path='/product', a direct request for /products/all (an
        # older server's path, root not included) was cut to 's/all' by a regex without a
        # boundary. It must match the mount at /products whole.
        ("/product", "/products/all", b"/products/all", ("/products",)),
        (
            "/product/products",
            "/product/products/all",
            b"/product/products/all",
            "/product/products",
            "/all",
        ),
        id="starlette-2599-root-is-a-prefix-of-a-segment",
    ),
]


@pytest.mark.parametrize(("given", "expected"), PEER_CASES)
def test_peer_root_path_bugs(
    given: tuple[str, str, bytes, tuple[str, ...]],
    expected: tuple[str, str, bytes, str, str],
) -> None:
    root_path, path, raw_path, prefixes = given
    environ, paths = mounted_environ(root_path, path, raw_path, *prefixes)
    assert paths == expected[:3]
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == expected[3:]


@pytest.mark.parametrize(
    ("parent", "prefixes", "child", "script_name", "path_info"),
    [
        # A mount moves its prefix into root_path and leaves path and raw_path alone.
        (
            ("", "/legacy/cart", b"/legacy/cart"),
            ("/legacy",),
            ("/legacy", "/legacy/cart", b"/legacy/cart"),
            "/legacy",
            "/cart",
        ),
        # Mounts nest: SCRIPT_NAME is the whole mount prefix.
        (("", "/a/b/c", b"/a/b/c"), ("/a", "/b"), ("/a/b", "/a/b/c", b"/a/b/c"), "/a/b", "/c"),
        (
            ("/root", "/root/a/b/c", b"/root/a/b/c"),
            ("/a", "/b"),
            ("/root/a/b", "/root/a/b/c", b"/root/a/b/c"),
            "/root/a/b",
            "/c",
        ),
        # Percent-escapes stay in raw_path; PATH_INFO is decoded from it (PEP 3333).
        (
            ("", "/legacy/a b", b"/legacy/a%20b"),
            ("/legacy",),
            ("/legacy", "/legacy/a b", b"/legacy/a%20b"),
            "/legacy",
            "/a b",
        ),
        (
            ("", "/café/x", b"/caf%C3%A9/x"),
            ("/café",),
            ("/café", "/café/x", b"/caf%C3%A9/x"),
            "/caf\xc3\xa9",
            "/x",
        ),
        # An escaped slash in the rest of the path is not a mount boundary problem.
        (
            ("", "/legacy/a/b", b"/legacy/a%2Fb"),
            ("/legacy",),
            ("/legacy", "/legacy/a/b", b"/legacy/a%2Fb"),
            "/legacy",
            "/a/b",
        ),
        # Without raw_path, the decoded path is used (and stays None in the child).
        (("", "/legacy/x", None), ("/legacy",), ("/legacy", "/legacy/x", None), "/legacy", "/x"),
        # An older server (hypercorn) leaves root_path out of path: the child gets it put in
        # front, in raw_path too, so both follow the current spec.
        (
            ("/shop", "/legacy/x", b"/legacy/x"),
            ("/legacy",),
            ("/shop/legacy", "/shop/legacy/x", b"/shop/legacy/x"),
            "/shop/legacy",
            "/x",
        ),
        (
            ("/sh op", "/legacy", b"/legacy"),
            ("/legacy",),
            ("/sh op/legacy", "/sh op/legacy", b"/sh%20op/legacy"),
            "/sh op/legacy",
            "",
        ),
        (
            ("/shop", "/legacy/x", None),
            ("/legacy",),
            ("/shop/legacy", "/shop/legacy/x", None),
            "/shop/legacy",
            "/x",
        ),
    ],
)
def test_child_paths_and_environ(
    parent: tuple[str, str, bytes | None],
    prefixes: tuple[str, ...],
    child: tuple[str, str, bytes | None],
    script_name: str,
    path_info: str,
) -> None:
    environ, paths = mounted_environ(*parent, *prefixes)
    assert paths == child
    assert environ["SCRIPT_NAME"] == script_name
    assert environ["PATH_INFO"] == path_info


def test_child_path_is_the_same_object_when_unchanged() -> None:
    # The router tests `is` to know whether path needs writing into the child scope.
    path = "/legacy/x"
    assert child_paths("", path, None, "/legacy")[1] is path


def test_root_path_with_a_lone_surrogate_is_a_peer_error() -> None:
    with pytest.raises(PeerProtocolError, match="root_path"):
        child_paths("/\ud800", "/legacy", b"/legacy", "/legacy")


# --- the trailing-slash redirect -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path", "query", "location"),
    [
        ("", "/legacy", b"/legacy", b"", b"/legacy/"),
        ("", "/legacy", b"/legacy", b"a=1&b=%20", b"/legacy/?a=1&b=%20"),
        ("", "/café", b"/caf%C3%A9", b"", b"/caf%C3%A9/"),
        ("", "/café", None, b"", b"/caf%C3%A9/"),
        ("", "/a b", None, b"q", b"/a%20b/?q"),
        # A raw_path with the query in it (some servers) loses it before the slash goes on.
        ("", "/legacy", b"/legacy?x=1", b"x=1", b"/legacy/?x=1"),
        ("/root", "/root/legacy", b"/root/legacy", b"", b"/root/legacy/"),
        # An older server's path: the client asked for root_path + path.
        ("/root", "/legacy", b"/legacy", b"", b"/root/legacy/"),
        ("/root", "/legacy", None, b"", b"/root/legacy/"),
        # What the client sent is never copied into the header as it is: CR/LF, spaces and
        # raw non-ASCII bytes are percent-encoded, in the path and in the query.
        (
            "",
            "/legacy",
            b"/legacy",
            b"a\r\nSet-Cookie: x=1",
            b"/legacy/?a%0D%0ASet-Cookie:%20x=1",
        ),
        ("", "/a b\xe9", b"/a b\xe9", b"", b"/a%20b%E9/"),
        # A path that starts with "//" would make the Location another host's.
        ("", "//evil.com", b"//evil.com", b"", b"/evil.com/"),
        ("/", "//evil.com", None, b"", b"/evil.com/"),
    ],
)
def test_slash_redirect_location(
    root_path: str, path: str, raw_path: bytes | None, query: bytes, location: bytes
) -> None:
    assert slash_redirect_location(root_path, path, raw_path, query) == location


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path"),
    [("", "/\ud800", None), ("/\ud800", "/legacy", b"/legacy")],
)
def test_slash_redirect_with_a_lone_surrogate_is_a_peer_error(
    root_path: str, path: str, raw_path: bytes | None
) -> None:
    with pytest.raises(PeerProtocolError):
        slash_redirect_location(root_path, path, raw_path, b"")


# --- properties ----------------------------------------------------------------------------------

segments = st.lists(st.sampled_from(["a", "app", "application", "b", "café", "x y"]), max_size=4)


@settings(max_examples=300, deadline=None)
@given(root=segments, prefix=segments.filter(bool), rest=segments, slash=st.booleans())
def test_mounted_environ_splits_the_full_path(
    root: list[str], prefix: list[str], rest: list[str], slash: bool
) -> None:
    """SCRIPT_NAME + PATH_INFO is the request path, SCRIPT_NAME is root + prefix, always."""
    root_path = "".join("/" + s for s in root)
    mount = "".join("/" + s for s in prefix)
    tail = "".join("/" + s for s in rest) + ("/" if slash and rest else "")
    path = root_path + mount + tail
    raw_path = quote(path).encode("ascii")
    found = MountTable([(mount, None)]).lookup(root_path, path)
    assert found is not None
    environ = build_environ(scope_for(*child_paths(root_path, path, raw_path, found[0])))
    full = path.encode("utf-8").decode("latin-1")
    assert environ["SCRIPT_NAME"] + environ["PATH_INFO"] == full
    assert environ["SCRIPT_NAME"] == (root_path + mount).encode("utf-8").decode("latin-1")


@settings(max_examples=300, deadline=None)
@given(prefix=segments.filter(bool), path=segments, extra=st.text(max_size=3))
def test_lookup_matches_only_at_segment_boundaries(
    prefix: list[str], path: list[str], extra: str
) -> None:
    mount = "".join("/" + s for s in prefix)
    request = "".join("/" + s for s in path) + extra
    found = MountTable([(mount, None)]).lookup("", request)
    at_boundary = request == mount or request.startswith(mount + "/")
    assert (found is not None) == at_boundary


@settings(max_examples=300, deadline=None)
@given(
    root=segments,
    path=segments,
    slash=st.booleans(),
    with_root=st.booleans(),
    raw=st.booleans(),
)
def test_route_is_lookup_then_child_paths(
    root: list[str], path: list[str], slash: bool, with_root: bool, raw: bool
) -> None:
    """The router's one-step `route` agrees with `lookup` + `child_paths`, for both server
    conventions (path with or without root_path), with and without raw_path."""
    table = MountTable([("/a", 1), ("/a/b", 2), ("/app", 3), ("/x y", 4)])
    root_path = "".join("/" + s for s in root) + ("/" if slash and root else "")
    request = "".join("/" + s for s in path) or "/"
    full = root_path.rstrip("/") + request if with_root else request
    raw_path = quote(full).encode("ascii") if raw else None
    found = table.lookup(root_path, full)
    routed = table.route(root_path, full, raw_path)
    if found is None:
        assert routed is None
    else:
        assert routed is not None
        value, child_root, child_path, child_raw = routed
        # None: path and raw_path stay as they are (and then really are unchanged).
        if child_path is None:
            assert child_raw is None
            child_path, child_raw = full, raw_path
        expected = child_paths(root_path, full, raw_path, found[0])
        assert (value, child_root, child_path, child_raw) == (found[1], *expected)


def test_route_without_root_path() -> None:
    table = MountTable([("/a", 1)])
    assert table.route(None, "/a/x", b"/a/x") == (1, "/a", None, None)
    assert table.route("", "/b", b"/b") is None
    # A top-level router's answer is made with the table, not per request.
    assert table.route("", "/a/x", b"/a/x") is table.route("", "/a/y", None)


def test_route_compiles_a_table_per_root_and_bounds_them() -> None:
    table = MountTable([("/a", 1)])
    roots = [f"/r{n}" for n in range(MAX_ROOTS * 2 + 3)]
    for root in roots:
        assert table.route(root, root + "/a/x", None) == (1, root + "/a", None, None)
        assert table.route(root, root + "/b", None) is None
    assert len(table._compiled) <= MAX_ROOTS
