"""Pages are opened through the 0600 opener file: the session token is never on any command line.

Every page the tray menu offers is opened through the tray's own action code in a separate process,
with a browser that stays running while every ``/proc/*/cmdline`` on the machine is read (as any
local user can with ``ps``); then the same for every page ``consentry page`` opens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.cli.page_cmd import PAGES
from agent.tray.model import OpenPage, build_menu
from agent.tray.state import read_state
from kit.web.server import PageServer
from tests.agent.test_page_employee import page  # noqa: F401 (fixture)
from tests.browser_kit import chromium, wait_for
from vault.paths import Layout

ROOT = Path(__file__).resolve().parents[2]
_TRAY_OPENS = (
    "import sys\n"
    "from agent.tray.actions import perform\n"
    "from agent.tray.model import OpenPage\n"
    "outcome = perform(OpenPage(sys.argv[1]))\n"
    "print(outcome.message)\n"
    "sys.exit(0 if outcome.ok else 1)\n"
)


def _command_lines() -> list[str]:
    """Every process's argv, as ``ps`` shows it to every user."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue  # the process ended
    return found


class Browser:
    """A stand-in $BROWSER that records its argument and stays running until released."""

    def __init__(self, folder: Path) -> None:
        self.seen = folder / "browser-argv"
        self.release = folder / "browser-release"
        self.script = folder / "browser"
        self.script.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$1" >> {self.seen}\nwhile [ ! -e {self.release} ]; do sleep 0.05; done\n'
        )
        self.script.chmod(0o755)

    def opened(self) -> list[str]:
        return self.seen.read_text().split() if self.seen.exists() else []


def _open_and_scan(command: list[str], browser: Browser, token: str) -> str:
    """Run ``command``; while its browser runs, no command line holds the token. Returns what the browser got."""
    already = len(browser.opened())
    browser.release.unlink(missing_ok=True)
    env = {**os.environ, "BROWSER": str(browser.script)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(browser.opened()) > already or proc.poll() is not None, "the browser to be started")
        leaks = [line[:60] for line in _command_lines() if token in line or "token=" in line]
    finally:
        browser.release.touch()
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert not leaks, f"the session token is on a command line: {leaks}"
    assert token not in output
    return browser.opened()[-1]


def test_the_tray_and_consentry_page_open_every_page_without_the_token_on_a_command_line(
    page: PageServer,  # noqa: F811 (the fixture)
    layout: Layout,
    tmp_path: Path,
) -> None:
    browser = Browser(tmp_path)
    state = read_state()
    assert state.page_available
    paths = []
    stack = list(build_menu(state))
    while stack:
        entry = stack.pop()
        stack.extend(entry.children)
        if isinstance(entry.action, OpenPage):
            paths.append(entry.action.path)
    assert {"/mydata", "/batches", "/consent/keyboard"} <= set(paths)
    opened = [_open_and_scan([sys.executable, "-c", _TRAY_OPENS, path], browser, page.token) for path in paths]
    opened += [
        _open_and_scan([sys.executable, "-m", "agent.cli.main", "page", where], browser, page.token) for where in PAGES
    ]
    for argument in opened:
        assert argument.startswith("file://"), argument
        assert Path(argument.removeprefix("file://")).stat().st_mode & 0o077 == 0

    # What the tray hands the browser lands in the page the menu named, in an open session.
    forwarder = _open_and_scan([sys.executable, "-c", _TRAY_OPENS, "/mydata"], browser, page.token)
    with chromium(tmp_path / "profile") as driver:
        driver.get(forwarder)
        wait_for(lambda: driver.current_url == page.url + "mydata", "the forwarded page")
        wait_for(lambda: "What is stored about you" in driver.page_source, "an authenticated session")
