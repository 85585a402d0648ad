"""``crossgate.__all__`` is exactly the public API the package root defines or re-exports.

After httpx's ``tests/test_exported_members.py``: a name added to ``crossgate/__init__.py`` but
forgotten in ``__all__`` (or the reverse) fails here, before ``from crossgate import *`` users or
the API reference notice.
"""

from __future__ import annotations
import __future__

import ast
import inspect
from pathlib import Path

import crossgate

# `from __future__ import annotations` in __init__.py would bind a public-looking name.
_FUTURE_FEATURE = type(__future__.annotations)


def _runtime_public_names() -> set[str]:
    """Public attributes of the imported package, minus its submodules.

    Submodules show up as attributes once anything imports them (``crossgate.sansio``,
    ``crossgate.testing``), so they are not part of what ``__init__.py`` exports.
    """
    names = set()
    for name in dir(crossgate):
        if name.startswith("_"):
            continue
        value = getattr(crossgate, name)
        if inspect.ismodule(value) or isinstance(value, _FUTURE_FEATURE):
            continue
        names.add(name)
    return names


def _names_bound_in_init() -> set[str]:
    """Every top-level name ``crossgate/__init__.py`` binds, read from its source."""
    tree = ast.parse(Path(inspect.getfile(crossgate)).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_public_name_is_in_all() -> None:
    missing = _runtime_public_names() - set(crossgate.__all__)
    assert not missing, f"public names missing from crossgate.__all__: {sorted(missing)}"


def test_everything_in_all_exists() -> None:
    absent = [name for name in crossgate.__all__ if not hasattr(crossgate, name)]
    assert not absent, f"crossgate.__all__ names that do not exist: {absent}"


def test_all_equals_the_public_names() -> None:
    assert set(crossgate.__all__) == _runtime_public_names() | {"__version__"}


def test_all_equals_the_names_init_binds() -> None:
    # The same check from the source, so it holds whatever other tests have imported.
    bound = _names_bound_in_init()
    public = {name for name in bound if not name.startswith("_")} | {"__version__"}
    assert set(crossgate.__all__) == public


def test_all_has_no_duplicates() -> None:
    assert len(crossgate.__all__) == len(set(crossgate.__all__))


def test_exports_come_from_crossgate() -> None:
    # A re-export of a third-party or stdlib object would make it part of our API by accident.
    for name in crossgate.__all__:
        value = getattr(crossgate, name)
        module = getattr(value, "__module__", None)
        if module is not None:
            assert module.startswith("crossgate"), (name, module)


def test_version_is_a_str() -> None:
    assert "__version__" in crossgate.__all__
    assert isinstance(crossgate.__version__, str)
    assert crossgate.__version__
