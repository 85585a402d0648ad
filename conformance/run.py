"""Run Starlette's and Flask's own test suites through crossgate and compare with expectations.

``python -m conformance`` (``make conformance``):

1. fetches the released sdists of the installed Starlette and Flask (the versions the dev
   extras pin) with ``pip download --no-binary :all:`` into ``build/conformance/``, once, and
   unpacks their ``tests/`` and ``pyproject.toml`` (their pytest settings) there;
2. runs each suite with pytest against the installed packages, once per mode of
   `conformance.plugin`: unwrapped, crossgate inline, crossgate shared, a2wsgi;
3. compares: a test that passes unwrapped must pass through each crossgate mode unless
   ``expected-losses.toml`` lists it for that mode with its reason. A test lost that is not
   listed fails the run, and so does a listed test that passes now (the file must stay true).
   Such tests are run once more, alone, before they count: the suites have a few tests that
   race on a loaded machine. a2wsgi is a column to compare with, not a gate.
4. prints a table (``--markdown`` writes it into ``docs/conformance.md`` too).

Exit status 0 when every crossgate mode matches the expectations, 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "conformance"
EXPECTED = Path(__file__).resolve().parent / "expected-losses.toml"
DOCS = ROOT / "docs" / "conformance.md"
SUITES = ("starlette", "flask")
MODES = ("none", "inline", "shared", "a2wsgi")
GATED = ("inline", "shared")
# Seconds per test (pytest-timeout): a hang is a failure. A whole run gets RUN_TIMEOUT.
TEST_TIMEOUT = 10
RUN_TIMEOUT = 900
TABLE_START = "<!-- conformance table: start -->"
TABLE_END = "<!-- conformance table: end -->"


@dataclass
class Run:
    """One suite in one mode: each test's outcome, and a one-line message for failures."""

    suite: str
    mode: str
    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> set[str]:
        return {test for test, outcome in self.outcomes.items() if outcome == "passed"}


@dataclass
class Group:
    """Tests an expectations group lists, and why no WSGI<->ASGI adapter can carry them."""

    suite: str
    name: str
    reason: str
    modes: tuple[str, ...]
    tests: list[str]
    # The test races for the reason given: lost or passing, either is accepted.
    either: bool = False


def fetch(suite: str) -> Path:
    """The unpacked tests of the installed release of ``suite``, downloaded on first use."""
    release = f"{suite}-{version(suite)}"
    target = CACHE / release
    if (target / ".complete").exists():
        return target
    sdists = CACHE / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = sdists / f"{release}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", "--dest", str(sdists), f"{suite}=={version(suite)}"),
            ],
            check=True,
        )
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(archive) as tar:
        # Only the tests and the pytest settings: never the package's own source, so the
        # suite imports the installed package.
        wanted = [
            member
            for member in tar.getmembers()
            if member.name.startswith(f"{release}/tests/")
            or member.name == f"{release}/pyproject.toml"
        ]
        tar.extractall(CACHE, members=wanted, filter="data")
    (target / ".complete").touch()
    return target


def run_suite(suite: str, mode: str, directory: Path, tests: list[str] | None = None) -> Run:
    """Run ``suite`` (or only ``tests`` of it) through ``mode``; a report JSON comes back."""
    tag = f"{suite}-{mode}" + ("-again" if tests else "")
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report = logs / f"{tag}.json"
    report.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        # Not used by the suites; its report hook trips gh-106905 on 3.11 (an AST recursion
        # error while a finalizer's traceback is formatted) when a2wsgi leaves coroutines.
        "-p",
        "no:hypothesispytest",
        "-p",
        "conformance.plugin",
        f"--round-trip={mode}",
        f"--round-trip-suite={suite}",
        f"--round-trip-report={report}",
        f"--timeout={TEST_TIMEOUT}",
        # One line per failure: pytest's longer styles parse source with ast, which races on
        # Python 3.11 with a traceback an adapter's thread logs at the same time (gh-106905).
        "--tb=line",
    ]
    if tests:
        listing = logs / f"{tag}.args"
        listing.write_text("\n".join(tests) + "\n")
        command.append(f"@{listing}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = Run(suite, mode)
    started = time.monotonic()
    with (logs / f"{tag}.log").open("w") as log:
        try:
            process = subprocess.run(
                command,
                cwd=directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            result.error = f"did not finish in {RUN_TIMEOUT} s (log: {log.name})"
            return result
    result.seconds = time.monotonic() - started
    if process.returncode not in (0, 1) or not report.exists():
        result.error = f"pytest exited with {process.returncode} (log: {log.name})"
        return result
    data = json.loads(report.read_text())
    result.outcomes, result.messages = data["outcomes"], data["messages"]
    return result


def load_expectations(path: Path = EXPECTED) -> list[Group]:
    """The groups of ``expected-losses.toml``; a test listed twice for a mode is an error."""
    data = tomllib.loads(path.read_text())
    groups = []
    for suite in SUITES:
        for name, body in data.get(suite, {}).items():
            modes = tuple(body.get("modes", GATED))
            unknown = set(modes) - set(GATED)
            if unknown or not body.get("reason") or not body.get("tests"):
                raise ValueError(f"{suite}.{name}: needs a reason, tests and modes among {GATED}")
            tests = list(body["tests"])
            groups.append(
                Group(suite, name, body["reason"], modes, tests, body.get("either", False))
            )
    for suite in SUITES:
        for mode in GATED:
            listed = Counter(
                test for g in groups if g.suite == suite and mode in g.modes for test in g.tests
            )
            twice = [test for test, count in listed.items() if count > 1]
            if twice:
                raise ValueError(f"{suite} ({mode}) lists these more than once: {twice}")
    return groups


def expected_for(groups: list[Group], suite: str, mode: str) -> dict[str, Group]:
    return {test: g for g in groups if g.suite == suite and mode in g.modes for test in g.tests}


@dataclass
class Verdict:
    """How one suite in one crossgate mode compares with the expectations."""

    lost: set[str]
    new_losses: set[str]
    now_passing: set[str]
    stale: set[str]

    @property
    def ok(self) -> bool:
        return not (self.new_losses or self.now_passing or self.stale)


def judge(baseline: Run, wrapped: Run, expected: dict[str, Group]) -> Verdict:
    lost = baseline.passed - wrapped.passed
    listed = set(expected)
    racing = {test for test, group in expected.items() if group.either}
    return Verdict(
        lost=lost,
        new_losses=lost - listed,
        now_passing=(listed - racing) & wrapped.passed,
        # Listed, yet neither lost nor passing: no longer passes unwrapped, or is gone.
        stale=listed - lost - wrapped.passed,
    )


def table(runs: dict[tuple[str, str], Run], groups: list[Group]) -> str:
    """The summary table, in Markdown."""
    lines = [
        "| suite | tests | passed unwrapped | crossgate inline | crossgate shared | a2wsgi "
        "| lost (inline / shared) | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for suite in SUITES:
        base = runs[suite, "none"]
        baseline = base.passed
        lost = {mode: baseline - runs[suite, mode].passed for mode in GATED}
        reasons: Counter[str] = Counter()
        for test in lost["inline"] | lost["shared"]:
            names = {g.name for g in groups if g.suite == suite and test in g.tests}
            reasons[", ".join(sorted(names)) or "not listed"] += 1
        why = "; ".join(f"{name}: {count}" for name, count in sorted(reasons.items()))
        cells = [
            suite,
            str(len(base.outcomes)),
            str(len(baseline)),
            *(str(len(baseline & runs[suite, mode].passed)) for mode in MODES[1:]),
            f"{len(lost['inline'])} / {len(lost['shared'])}",
            why,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(markdown: str) -> None:
    text = DOCS.read_text()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    DOCS.write_text(f"{head}{TABLE_START}\n{markdown}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--suite", choices=SUITES, action="append", help="default: both")
    parser.add_argument("--jobs", type=int, default=2, help="pytest processes at a time")
    parser.add_argument(
        "--markdown", action="store_true", help="also write the table into docs/conformance.md"
    )
    args = parser.parse_args(argv)
    suites = args.suite or list(SUITES)
    groups = load_expectations()
    started = time.monotonic()
    directories = {suite: fetch(suite) for suite in suites}
    runs: dict[tuple[str, str], Run] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(run_suite, suite, mode, directories[suite]): (suite, mode)
            for suite in suites
            for mode in MODES
        }
        for future in concurrent.futures.as_completed(futures):
            run = future.result()
            runs[run.suite, run.mode] = run
            print(f"  {run.suite:9} {run.mode:7} {len(run.passed):4} passed  {run.seconds:5.1f} s")
    failed = False
    for run in runs.values():
        if run.error:
            print(f"ERROR: {run.suite} ({run.mode}): {run.error}")
            failed = True
    if failed:
        return 1
    for suite in suites:
        for mode in GATED:
            expected = expected_for(groups, suite, mode)
            verdict = judge(runs[suite, "none"], runs[suite, mode], expected)
            doubtful = sorted(verdict.new_losses | verdict.now_passing)
            if doubtful:
                # Once more, alone, before they count (and unwrapped too for new losses).
                again = run_suite(suite, mode, directories[suite], doubtful)
                if again.error:
                    print(f"ERROR: {suite} ({mode}) rerun: {again.error}")
                    return 1
                runs[suite, mode].outcomes.update(again.outcomes)
                runs[suite, mode].messages.update(again.messages)
                verdict = judge(runs[suite, "none"], runs[suite, mode], expected)
            failed |= not verdict.ok
            report(suite, mode, verdict, runs[suite, mode])
    if set(suites) == set(SUITES):
        markdown = table(runs, groups)
        print()
        print(markdown)
        if args.markdown:
            write_docs(markdown)
    print(f"\nconformance: {time.monotonic() - started:.0f} s, {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


def report(suite: str, mode: str, verdict: Verdict, run: Run) -> None:
    print(f"{suite} ({mode}): {len(verdict.lost)} lost, all listed" if verdict.ok else "", end="")
    if verdict.ok:
        print()
        return
    print(f"{suite} ({mode}): the expectations file is out of date:")
    for test in sorted(verdict.new_losses):
        print(f"  newly lost: {test}\n      {run.messages.get(test, run.outcomes.get(test))}")
    for test in sorted(verdict.now_passing):
        print(f"  passes now, remove it from expected-losses.toml: {test}")
    for test in sorted(verdict.stale):
        print(f"  listed but does not pass unwrapped (or is gone): {test}")


if __name__ == "__main__":
    sys.exit(main())
