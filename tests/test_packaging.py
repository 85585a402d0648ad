"""The extras in pyproject.toml: `demo` (what `make demo` installs) is a subset of `dev` with the
same pins, and carries none of the test, lint or docs toolchain."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
TOOLCHAIN = {"pytest", "ruff", "mypy", "mkdocs", "hypothesis", "playwright", "django-stubs"}


def extras() -> dict[str, list[str]]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = data["project"]["optional-dependencies"]
    return found


def name(requirement: str) -> str:
    """The normalised project name of a requirement (PEP 503: runs of -_. are one -)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def test_the_demo_extra_pins_what_dev_pins() -> None:
    found = extras()
    dev = {name(req): req for req in found["dev"]}
    for requirement in found["demo"]:
        assert name(requirement) in dev, f"{requirement} is in demo but not in dev"
        assert dev[name(requirement)] == requirement, (requirement, dev[name(requirement)])


def test_the_demo_extra_has_no_development_tools() -> None:
    assert not {name(req) for req in extras()["demo"]} & TOOLCHAIN


def test_the_demo_extra_has_what_the_demos_run_on() -> None:
    demo = {name(req) for req in extras()["demo"]}
    assert {"django", "channels", "channels-redis", "uvicorn", "hypercorn", "daphne"} <= demo
    assert {"gunicorn", "granian", "aioquic", "flask", "fastapi", "starlette", "redis"} <= demo


def make_dry_run(*args: str) -> str:
    """What `make` would run, every target out of date (`-B`), nothing run (`-n`)."""
    make = shutil.which("make")
    assert make is not None, "make is missing"
    result = subprocess.run(
        [make, "-n", "-B", *args],
        cwd=PYPROJECT.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_make_demo_installs_the_demo_extra_and_listens_on_port() -> None:
    commands = make_dry_run("demo", "PORT=8001")
    assert '-e ".[demo]"' in commands
    assert ".[dev]" not in commands
    assert "-m demo_projects.django_helpdesk serve --stage 3 --port 8001" in commands


def test_every_demo_target_takes_the_port() -> None:
    for target in ("demo-django", "demo-flask-mount", "demo-gunicorn", "demo-flask-legacy"):
        commands = make_dry_run(target, "PORT=8123")
        assert "8123" in commands, target
        assert "8000" not in commands, target
