"""The tray never shows a state it has not confirmed: a real agent, a real tray process, trayer on Xvfb.

Found by hand (issue 14): after ``erase --all`` then a grant the tray kept "off" while the agent
captured, and a frozen agent or a wedged control socket left the last state on show. Each test here
changes the state through the same library calls as the CLI and looks at the icon window as the tray
host sees it (its title is the tooltip, the state in words).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.consent_signal import ask_agent
from agent.erasure import erase
from agent.tray import actions
from agent.tray.model import Pause, Resume, Revoke, tooltip
from agent.tray.state import read_state
from devkit.components import require
from devkit.xserver import XServer, x_server
from protocol.categories import Category
from protocol.timeutil import utc_now
from tests.agent_harness import AgentProcess, agent_env, grant
from tests.tray_kit import SLOT, click_icon, docked_icon, look, mapped_menu, tray_host, wait_title
from vault.paths import Layout
from vault.policy import MachinePolicy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.x11


@pytest.fixture
def x() -> Iterator[XServer]:
    with x_server(window_manager=False) as server:
        yield server


class Tray:
    """``consentry tray`` as a real process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, refresh: float = 0.3) -> None:
        self.log_path = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "tray", "--refresh", str(refresh)],
            env=env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _running(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path, refresh: float = 0.3, *agent_args: str
) -> tuple[AgentProcess, Tray]:
    tray_host(x)
    env = agent_env(layout.home, policy_path, x.display)
    agent = AgentProcess(layout, env, *agent_args)
    agent.wait_status(lambda s: True, "the agent's first status")
    tray = Tray(env, tmp_path / "tray.log", refresh)
    x.wait_for(lambda: "panel" in (docked_icon(x) or ("", []))[1], "the tray icon to dock", timeout=20)
    return agent, tray


def _confirmed(done: tuple[bool, str | None]) -> None:
    confirmed, problem = done
    assert confirmed and problem is None, problem


def _wait_title_matches_status(x: XServer, timeout: float = 20.0) -> str:
    """Wait until the icon's title is what ``consentry status`` says now (its report, in the tray's words)."""
    deadline = time.monotonic() + timeout
    expected = title = ""
    while time.monotonic() < deadline:
        expected = tooltip(read_state())
        title = (docked_icon(x) or ("", []))[0]
        if title == expected:
            return title
        time.sleep(0.1)
    raise AssertionError(f"the tray says {title!r} while consentry status says {expected!r}")


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_erase_all_then_grant_shows_capturing_every_time(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    """The reported freeze: `erase --all --yes`, then `consent grant keyboard --yes`, while the tray runs."""
    agent, tray = _running(x, layout, policy_path, tmp_path)
    env = agent_env(layout.home, policy_path, x.display)
    try:
        _cli(env, "consent", "grant", "keyboard", "--yes")
        for _ in range(12):
            _cli(env, "erase", "--all", "--yes")
            _cli(env, "consent", "grant", "keyboard", "--yes")
            agent.wait_state("keyboard", "capturing")
            assert _wait_title_matches_status(x) == "Consentry: capturing keyboard"
            assert tray.proc.poll() is None
    finally:
        tray.stop()
        assert agent.stop() == 0
    assert "Traceback" not in tray.output


def test_a_frozen_agent_shows_unknown_and_the_tray_recovers_after_sigcont(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    agent, tray = _running(x, layout, policy_path, tmp_path, refresh=2.0)  # the tray's default interval
    try:
        grant(layout, policy_path, Category.KEYBOARD)
        agent.wait_state("keyboard", "capturing")
        wait_title(x, "Consentry: capturing keyboard")
        os.kill(agent.proc.pid, signal.SIGSTOP)
        try:
            wait_title(x, "Consentry: state unknown - ")
        finally:
            os.kill(agent.proc.pid, signal.SIGCONT)
        assert _wait_title_matches_status(x) == "Consentry: capturing keyboard"
    finally:
        tray.stop()
        assert agent.stop() == 0
    assert "state unknown" in tray.output and "Traceback" not in tray.output  # and it said why


def test_a_wedged_control_socket_shows_unknown_and_the_tray_recovers(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    """Something holds the agent's socket path and never answers (as the old one-at-a-time server did)."""
    agent, tray = _running(x, layout, policy_path, tmp_path, refresh=2.0)
    path = layout.control_socket
    aside = path.with_name(path.name + ".aside")
    wedge = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        grant(layout, policy_path, Category.KEYBOARD)
        agent.wait_state("keyboard", "capturing")
        wait_title(x, "Consentry: capturing keyboard")
        path.rename(aside)  # the agent's socket keeps working under another name
        wedge.bind(str(path))
        wedge.listen(64)  # connections queue up; nobody ever reads or answers them
        wait_title(x, "Consentry: state unknown - the agent does not answer")
        wedge.close()
        path.unlink()
        aside.rename(path)
        assert _wait_title_matches_status(x) == "Consentry: capturing keyboard"
    finally:
        wedge.close()
        if aside.exists():
            path.unlink(missing_ok=True)
            aside.rename(path)
        tray.stop()
        assert agent.stop() == 0
    assert "the agent does not answer" in tray.output


def test_the_poll_does_not_fill_the_logs_only_changes_are_logged(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    agent, tray = _running(x, layout, policy_path, tmp_path, refresh=0.2)
    try:
        grant(layout, policy_path, Category.KEYBOARD)
        agent.wait_state("keyboard", "capturing")
        wait_title(x, "Consentry: capturing keyboard")
        agent_lines, tray_lines = len(agent.stderr.splitlines()), len(tray.output.splitlines())
        time.sleep(4.0)  # twenty looks at the agent, five seconds' worth at the default interval
        assert agent.status() is not None and tray.proc.poll() is None
        new_agent = agent.stderr.splitlines()[agent_lines:]
        new_tray = tray.output.splitlines()[tray_lines:]
        assert new_agent == [] and new_tray == []  # nothing changed, so nothing is logged
        _cli(agent_env(layout.home, policy_path, x.display), "pause", "--for", "15m")
        wait_title(x, "Consentry: paused")
    finally:
        tray.stop()
        assert agent.stop() == 0
    changed = agent.stderr.splitlines()[agent_lines:]
    assert not any("control: status" in line for line in agent.stderr.splitlines())
    assert any("control: consent-changed" in line for line in changed)  # the change itself is logged
    tray_changes = [line for line in tray.output.splitlines()[tray_lines:] if " INFO " in line]
    assert len(tray_changes) == 1 and "tray: paused" in tray_changes[0]


def _soak_changes() -> int:
    """300 changes (the issue's figure; about a minute here); CONSENTRY_TRAY_SOAK asks for more or fewer."""
    return int(os.environ.get("CONSENTRY_TRAY_SOAK", "300"))


def test_soak_the_icon_keeps_its_slot_and_its_title_matches_status_through_every_change(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    """Grant, pause, resume, revoke, erase, over and over: after each, the icon sits in its slot, full width,
    and its title is what ``consentry status`` says. (Found by hand: 3 of 7 pause/resume toggles left the
    icon 1x30 px in trayer, invisible until a later change.)"""
    # Synthetic input (a real source of the agent's own): it starts and stops at once, where the X11
    # keyboard source takes up to 2 s to stop, which would make 300 changes last five minutes.
    agent, tray = _running(x, layout, policy_path, tmp_path, 0.2, "--replay", "synthetic")

    def grant_keyboard() -> None:
        grant(layout, policy_path, Category.KEYBOARD)
        _confirmed(ask_agent(layout))

    def erase_everything() -> None:
        erase(layout, now=utc_now(), everything=True, policy=MachinePolicy)
        _confirmed(ask_agent(layout))

    def act(action: Pause | Resume | Revoke) -> Callable[[], None]:
        def run() -> None:
            outcome = actions.perform(action)
            assert outcome.ok, outcome.message

        return run

    cycle = [grant_keyboard, act(Pause("15m")), act(Resume()), act(Revoke(Category.KEYBOARD)), erase_everything]
    titles: set[str] = set()
    try:
        for step in range(_soak_changes()):
            cycle[step % len(cycle)]()
            titles.add(_wait_title_matches_status(x))
            seen = look(x)
            assert seen is not None and seen.docked and seen.mapped, (step, seen)
            assert seen.width >= SLOT and seen.height >= SLOT, (step, seen)  # never the 1 px sliver
            assert tray.proc.poll() is None
    finally:
        tray.stop()
        assert agent.stop() == 0
    assert {t.split(" ")[1] for t in titles} == {"capturing", "paused", "off"}
    assert "Traceback" not in tray.output


def test_right_click_opens_the_menu_and_the_icon_keeps_updating_while_it_is_open(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    require(importlib.util.find_spec("tkinter") is not None, "Tk (the X11 tray's menu)", "apt-get install python3-tk")
    agent, tray = _running(x, layout, policy_path, tmp_path)
    try:
        wait_title(x, "Consentry: off")
        click_icon(x, "3")  # trays open menus on the right button
        x.wait_for(lambda: mapped_menu(x), "the tray menu to open on a right click", timeout=20)
        grant(layout, policy_path, Category.KEYBOARD)
        _confirmed(ask_agent(layout))
        wait_title(x, "Consentry: capturing keyboard")  # drawn while the menu is still open
        assert mapped_menu(x)
        x.xdotool("key", "Escape")
        x.wait_for(lambda: not mapped_menu(x), "the menu to close")
        click_icon(x, "1")  # and the left button too
        x.wait_for(lambda: mapped_menu(x), "the tray menu to open on a left click", timeout=20)
        x.xdotool("key", "Escape")
        x.wait_for(lambda: not mapped_menu(x), "the menu to close")
    finally:
        tray.stop()
        assert agent.stop() == 0
    assert "Traceback" not in tray.output
