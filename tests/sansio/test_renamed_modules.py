"""The sansio modules renamed after their middleware keep their old import paths, with a warning."""

from __future__ import annotations

import importlib
import sys

import pytest

# Old module -> the modules its public names moved to (the first one named in the warning).
RENAMED = {
    "compression": ("gzip", "gzip_codec"),
    "hosts": ("trusted_hosts",),
    "proxy": ("proxy_headers", "forwarded"),
    "origin": ("origin_check",),
}


@pytest.mark.parametrize(("old", "new"), RENAMED.items())
def test_the_old_path_warns_and_exports_the_same_objects(old: str, new: tuple[str, ...]) -> None:
    sys.modules.pop(f"crossgate.sansio.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"crossgate.sansio.{new[0]}"):
        alias = importlib.import_module(f"crossgate.sansio.{old}")
    modules = [importlib.import_module(f"crossgate.sansio.{name}") for name in new]
    exported = {name: getattr(module, name) for module in modules for name in module.__all__}
    exported.pop("CONTROL", None)  # new in crossgate.sansio.forwarded, never in the old module
    assert {name: getattr(alias, name) for name in alias.__all__} == exported
