"""The conformance runner's bookkeeping (`conformance.run`): the expectations file and the verdict.

The suites themselves run through `make conformance`; these tests check that the committed
expectations file is well formed and that a change in either direction fails the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.run import EXPECTED, GATED, Group, Run, expected_for, judge, load_expectations


def _run(mode: str, passed: set[str], failed: frozenset[str] | set[str] = frozenset()) -> Run:
    outcomes = dict.fromkeys(passed, "passed") | dict.fromkeys(failed, "failed")
    return Run("starlette", mode, outcomes)


def test_the_committed_expectations_are_well_formed() -> None:
    groups = load_expectations(EXPECTED)

    assert {g.suite for g in groups} == {"starlette", "flask"}
    for group in groups:
        assert set(group.modes) <= set(GATED)
        assert len(group.reason) > 60, f"{group.name}: say why no adapter can carry it"
        assert all("::" in test for test in group.tests)


def test_a_test_listed_twice_for_a_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "expected.toml"
    path.write_text(
        '[starlette.a]\nreason = "r"\ntests = ["t.py::x"]\n'
        '[starlette.b]\nreason = "r"\nmodes = ["inline"]\ntests = ["t.py::x"]\n'
    )

    with pytest.raises(ValueError, match="more than once"):
        load_expectations(path)


def test_new_losses_passing_expected_ones_and_stale_entries_fail_the_verdict() -> None:
    baseline = _run("none", {"kept", "lost-listed", "lost-new", "fixed-listed"}, {"broken"})
    wrapped = _run("inline", {"kept", "fixed-listed"}, {"lost-listed", "lost-new", "broken"})
    listed = Group("starlette", "g", "reason", GATED, ["lost-listed", "fixed-listed", "broken"])

    verdict = judge(baseline, wrapped, expected_for([listed], "starlette", "inline"))

    assert verdict.lost == {"lost-listed", "lost-new"}
    assert verdict.new_losses == {"lost-new"}
    assert verdict.now_passing == {"fixed-listed"}
    assert verdict.stale == {"broken"}  # listed, but it does not even pass unwrapped
    assert not verdict.ok


def test_a_racing_group_accepts_either_outcome_and_modes_are_separate() -> None:
    baseline = _run("none", {"races", "shared-only"})
    racing = Group("starlette", "r", "reason", ("shared",), ["races"], either=True)
    other = Group("starlette", "s", "reason", ("shared",), ["shared-only"])

    passes = judge(baseline, _run("shared", {"races", "shared-only"}), {"races": racing})
    lost = judge(
        baseline, _run("shared", set()), expected_for([racing, other], "starlette", "shared")
    )
    inline = judge(
        baseline, _run("inline", {"races"}), expected_for([racing, other], "starlette", "inline")
    )

    assert passes.ok
    assert lost.ok
    assert inline.new_losses == {"shared-only"}
