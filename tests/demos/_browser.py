"""Headless Chromium for the demo browser tests: Debian's system browser, driven by Playwright.

Nothing here downloads a browser: `chromium()` launches `/usr/bin/chromium` (Debian's package,
which `make test` installs) through Playwright's sync API. The flags keep the browser from
reaching out to the network on its own (this machine's closed network refuses those
connections, and a browser waiting on them stalls) and from needing a sandbox or a GPU, which a
CI container does not offer.

Every process the browser started is checked to be gone once it is closed: a test that leaks a
renderer fails here, with the PIDs, rather than slowing down every later test.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DEFAULT_TIMEOUT_MS",
    "browser_context",
    "chromium",
    "new_page",
]

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = (
    # No sandbox: containers (and root) cannot give Chromium the namespaces it wants.
    "--no-sandbox",
    "--disable-gpu",
    # QUIC would try UDP first; loopback HTTP/1.1 and HTTP/2 over TCP are what we test.
    "--disable-quic",
    "--no-first-run",
    # Without these three the browser opens connections to Google's services at start, which a
    # closed network refuses, and the refused connections delay or break the first navigation.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Every wait a page does (navigation, click, locator) fails after this long instead of hanging
# until pytest's 60 s timeout kills the whole test with no useful message.
DEFAULT_TIMEOUT_MS = 10_000

# How long the browser's processes get to exit after `Browser.close()` before they count as leaked.
_EXIT_TIMEOUT = 5.0
_POLL_INTERVAL = 0.05


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` (field 22 of `/proc/PID/stat`), or None if it has exited.

    Compared with the value seen earlier, it tells a still-running process from a new one that
    reused its PID.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat.rpartition(")")[2].split()
    # fields[0] is field 3 (state): a zombie has exited, its parent just has not reaped it yet.
    if fields[0] == "Z":
        return None
    return fields[19]


def _descendants(root: int) -> dict[int, str]:
    """Every live process below ``root`` in the process tree, mapped to its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, ()))
    while pending:
        pid = pending.pop()
        started = _start_time(pid)
        if started is not None:
            found[pid] = started
            pending.extend(children.get(pid, ()))
    return found


def _still_running(processes: dict[int, str]) -> dict[int, str]:
    return {pid: started for pid, started in processes.items() if _start_time(pid) == started}


def _ensure_exited(processes: dict[int, str]) -> None:
    """Wait (bounded) for ``processes`` to exit; kill and report any that do not."""
    deadline = time.monotonic() + _EXIT_TIMEOUT
    left = _still_running(processes)
    while left and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL)
        left = _still_running(left)
    if not left:
        return
    for pid in left:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pytest.fail(f"browser processes still running after close (now killed): {sorted(left)}")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch headless `/usr/bin/chromium` through Playwright; close it and check it is gone.

    The browser runs with a fresh temporary profile (Playwright makes one per launch and removes
    it) and with `HOME`/XDG directories inside a temporary directory, so nothing of a previous
    run or of the user's own browser leaks in. Pages should come from `browser_context` or
    `new_page`, which set bounded default timeouts.

    Fails the test (never skips: a browser test that silently skips proves nothing) if the
    system browser is missing, and if any process the browser started is still running after
    it closed.
    """
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium; "
            "run `make test`, which installs Debian's chromium"
        )
    with tempfile.TemporaryDirectory(prefix="crossgate-chromium-") as home:
        env: dict[str, str | float | bool] = dict(os.environ)
        env.update(
            HOME=home,
            XDG_CONFIG_HOME=os.path.join(home, "config"),
            XDG_CACHE_HOME=os.path.join(home, "cache"),
        )
        before = _descendants(os.getpid())
        with sync_playwright() as playwright:
            # The Playwright driver is a child of this process, and the browser a child of the
            # driver; other children (the servers under test) were there before and are not ours.
            drivers = set(_descendants(os.getpid())) - set(before)
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=list(CHROMIUM_ARGS),
                env=env,
                timeout=30_000,
            )
            processes: dict[int, str] = {}
            try:
                yield browser
            finally:
                # Recorded while the browser still runs: once it exits, orphans would be
                # re-parented away from us and no longer show up below our PID.
                processes = {}
                for driver in drivers:
                    processes |= _descendants(driver)
                    started = _start_time(driver)
                    if started is not None:
                        processes[driver] = started
                browser.close()
        # Leaving `sync_playwright` stops the Playwright driver too, which is in the same set.
        _ensure_exited(processes)


@contextmanager
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (own cookies and storage) whose pages have bounded timeouts.

    Several pages of one context share cookies, like tabs of one browser window.
    """
    context = browser.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """One page in its own fresh context, with bounded default timeouts."""
    with browser_context(browser) as context:
        yield context.new_page()
