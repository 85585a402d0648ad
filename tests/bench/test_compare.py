"""bench.compare checks crossgate out at a commit, outside the repository, and reads CPU time."""

from __future__ import annotations

import os
import subprocess
import time

from bench.compare import _cpu_seconds, checkout
from bench.subproc import ROOT


def test_a_commit_is_checked_out_outside_the_repository() -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    tree = checkout("HEAD")
    assert tree.name == head
    assert (tree / "crossgate" / "__init__.py").is_file()
    # Its bench/ is this one: the served app modules are the ones being measured.
    assert (tree / "bench").resolve() == ROOT / "bench"
    # Not under the repository: tools walking it would follow the link back without end.
    assert ROOT not in tree.resolve().parents
    assert checkout("WORK") == ROOT


def test_cpu_time_of_this_process_is_read() -> None:
    before = _cpu_seconds(os.getpid())
    deadline = time.monotonic() + 10  # the kernel counts in ticks of 10 ms: work until one
    while _cpu_seconds(os.getpid()) <= before and time.monotonic() < deadline:
        sum(range(100_000))
    assert _cpu_seconds(os.getpid()) > before
