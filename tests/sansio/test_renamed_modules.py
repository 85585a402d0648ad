"""The sansio modules renamed after their middleware keep their old import paths, with a warning."""

from __future__ import annotations

import importlib
import sys

import pytest

RENAMED = [
    ("compression", "gzip"),
    ("hosts", "trusted_hosts"),
    ("proxy", "proxy_headers"),
    ("origin", "origin_check"),
]


@pytest.mark.parametrize(("old", "new"), RENAMED)
def test_the_old_path_warns_and_exports_the_same_objects(old: str, new: str) -> None:
    sys.modules.pop(f"crossgate.sansio.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"crossgate.sansio.{new}"):
        alias = importlib.import_module(f"crossgate.sansio.{old}")
    modules = [importlib.import_module(f"crossgate.sansio.{new}")]
    if old == "compression":  # the compressor moved to a module of its own
        modules.append(importlib.import_module("crossgate.sansio.gzip_codec"))
    exported = {name: getattr(module, name) for module in modules for name in module.__all__}
    assert {name: getattr(alias, name) for name in alias.__all__} == exported
