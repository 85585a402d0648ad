"""``crossgate.sansio`` stays sans-IO: no threads, no event loop, no sockets, no processes.

After h11 (``h11/_connection.py`` never touches a socket): the translation code takes values and
returns values, so it can be tested with plain tables and reused by any IO shell. A static walk
over the source is used rather than ``sys.modules`` after an import, because importing anything
under ``crossgate`` runs ``crossgate/__init__.py``, which imports the (asyncio-using) adapters.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import crossgate

FORBIDDEN = frozenset(
    {"asyncio", "threading", "concurrent", "os", "socket", "selectors", "subprocess"}
)

PACKAGE_DIR = Path(crossgate.__file__).parent
SANSIO_DIR = PACKAGE_DIR / "sansio"


def _imported_modules(
    tree: ast.AST, module_name: str, *, is_package: bool = False
) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``tree``, nested ones included.

    ``module_name`` (``crossgate.sansio.environ``; for a package's ``__init__.py`` the package,
    with ``is_package``) resolves relative imports. For
    ``from package import name`` both ``package`` and ``package.name`` are reported, as ``name``
    may be a submodule. ``__import__("x")`` and ``importlib.import_module("x")`` with a literal
    count too.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module_name.split(".")
                package = parts[: len(parts) - node.level + (1 if is_package else 0)]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if (
                called in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield node.lineno, first.value


def forbidden_imports(
    source: str, module_name: str = "crossgate.sansio.example", *, is_package: bool = False
) -> list[str]:
    """Describe each import in ``source`` of a module from :data:`FORBIDDEN` (or under it)."""
    tree = ast.parse(source)
    found = (
        f"line {line}: {name.partition('.')[0]}"
        for line, name in _imported_modules(tree, module_name, is_package=is_package)
        if name.partition(".")[0] in FORBIDDEN
    )
    # `from os import environ` reports both "os" and "os.environ"; once is enough.
    return list(dict.fromkeys(found))


def _module_file(name: str) -> Path | None:
    """The source file of a ``crossgate`` module, or ``None`` when ``name`` is not one."""
    parts = name.split(".")
    if parts[0] != "crossgate":
        return None
    path = PACKAGE_DIR.parent.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sansio_closure() -> list[Path]:
    """``crossgate/sansio/*.py`` plus every ``crossgate`` module they import, transitively.

    Parent packages' ``__init__`` files are not followed implicitly (see the module docstring);
    an explicit ``from crossgate import X`` does pull ``crossgate/__init__.py`` in.
    """
    pending = sorted(SANSIO_DIR.glob("*.py"))
    seen: list[Path] = []
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.append(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = _imported_modules(tree, _module_name(path), is_package=_is_package(path))
        for _, name in imports:
            target = _module_file(name)
            if target is not None and target not in seen:
                pending.append(target)
    return sorted(seen)


def test_the_walk_finds_the_sansio_modules() -> None:
    # Guard against a vacuous pass (a moved package, a wrong glob).
    names = {path.name for path in sansio_closure() if path.parent == SANSIO_DIR}
    assert {"__init__.py", "environ.py", "headers.py", "response.py"} <= names


def test_sansio_imports_no_io_modules() -> None:
    problems = []
    for path in sansio_closure():
        source = path.read_text(encoding="utf-8")
        name, is_package = _module_name(path), _is_package(path)
        for problem in forbidden_imports(source, name, is_package=is_package):
            problems.append(f"{path.relative_to(PACKAGE_DIR.parent)} {problem}")
    assert not problems, "sans-IO code imports IO modules:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import os.path",
        "import threading as t",
        "import json, socket",
        "from concurrent.futures import ThreadPoolExecutor",
        "from os import environ",
        "from selectors import DefaultSelector",
        "from subprocess import run",
        "def f():\n    import asyncio\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio\n",
        "try:\n    import threading\nexcept ImportError:\n    pass\n",
        "__import__('os')",
        "import importlib\nimportlib.import_module('asyncio')",
    ],
)
def test_checker_catches_forbidden_imports(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "",
        "import re",
        "from urllib.parse import quote",
        "from crossgate.exceptions import PeerProtocolError",
        "from . import headers",
        "import osmosis",
        "import asynciox",
        "x = 'import asyncio'",
        "# import asyncio",
    ],
)
def test_checker_allows_other_imports(source: str) -> None:
    assert forbidden_imports(source) == []


def test_checker_reports_the_line() -> None:
    assert forbidden_imports("import re\n\nimport asyncio\n") == ["line 3: asyncio"]
    assert forbidden_imports("from os import environ, path") == ["line 1: os"]


@pytest.mark.parametrize(
    ("source", "module_name", "is_package", "expected"),
    [
        # Relative imports resolve against the module's package, so `from .. import os` in
        # crossgate/sansio/x.py is crossgate.os (ours), not the stdlib os.
        ("from .. import os", "crossgate.sansio.x", False, []),
        ("from . import asyncio", "crossgate.sansio", True, []),
    ],
)
def test_checker_resolves_relative_imports(
    source: str, module_name: str, is_package: bool, expected: list[str]
) -> None:
    assert forbidden_imports(source, module_name, is_package=is_package) == expected


def test_relative_import_resolution() -> None:
    tree = ast.parse("from . import headers\nfrom ..exceptions import X")
    module = [name for _, name in _imported_modules(tree, "crossgate.sansio.environ")]
    package = [name for _, name in _imported_modules(tree, "crossgate.sansio", is_package=True)]
    assert "crossgate.sansio.headers" in module
    assert "crossgate.exceptions" in module
    assert "crossgate.sansio.headers" in package
    assert "crossgate.exceptions" in package


def test_crossgate_modules_are_followed() -> None:
    # The closure reaches modules outside sansio/ that sansio imports, so moving an IO import
    # one module away does not hide it.
    closure = {_module_name(path) for path in sansio_closure()}
    assert "crossgate.exceptions" in closure
    assert "crossgate.sansio.headers" in closure
    assert _module_file("crossgate.concurrency") == PACKAGE_DIR / "concurrency" / "__init__.py"
    assert _module_file("json") is None
