"""The tray: its pure menu model, its icon, and the real thing docked in a real X11 tray host.

Model tests need nothing; the X11 tests run Xvfb, ``trayer`` (a real XEMBED system-tray host) and
``consentry tray`` as a real process, and drive the menu model against a real agent process.
"""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.tray import actions
from agent.tray.app import TrayApp, choose_backend
from agent.tray.icon import render
from agent.tray.model import (
    ICONS,
    SEPARATOR,
    CategoryView,
    MenuEntry,
    OpenPage,
    Pause,
    Quit,
    Resume,
    Revoke,
    TrayState,
    build_menu,
    icon_for,
    icon_kind,
    pause_end,
    tooltip,
)
from agent.tray.state import read_state
from devkit.components import require, require_executable
from devkit.xserver import XServer, x_server
from kit.page_link import page_link, write_page_link
from protocol.categories import Category
from protocol.timeutil import parse_iso, utc_now
from tests.agent_harness import AgentProcess, agent_env, grant
from tests.doc_shots import save_image
from tests.tray_kit import click_icon, docked_icon, find_window, mapped_menu, screenshot, tray_host, wait_title
from vault.paths import Layout
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def _state(
    captures: dict[str, tuple[str, str]] | None = None,
    *,
    paused_until: str | None = None,
    problems: tuple[str, ...] = (),
    waiting: int = 0,
    page: bool = True,
) -> TrayState:
    """categories: name -> (consent state, capture state); the rest not granted."""
    captures = captures or {}
    views = tuple(CategoryView(c, *captures.get(c.value, ("not_granted", "not_granted"))) for c in Category)
    return TrayState(views, paused_until, problems, waiting, page)


def _walk(entries: tuple[MenuEntry, ...]) -> list[MenuEntry]:
    out: list[MenuEntry] = []
    for entry in entries:
        out.append(entry)
        out += _walk(entry.children)
    return out


def _entry(entries: tuple[MenuEntry, ...], starts: str) -> MenuEntry:
    found = [e for e in _walk(entries) if e.label.startswith(starts)]
    assert len(found) == 1, (starts, [e.label for e in _walk(entries)])
    return found[0]


# --- the pure model ------------------------------------------------------------------------------

STATES = {
    "capturing": _state({"keyboard": ("granted", "capturing")}),
    "paused": _state({"keyboard": ("granted", "paused")}, paused_until="2026-12-02T10:15:00Z"),
    "off": _state(),
    "problem": _state({"keyboard": ("granted", "storage_error")}, problems=("the agent cannot store data",)),
}


@pytest.mark.parametrize("kind", list(STATES))
def test_every_state_has_its_shape_colour_tooltip_and_menu(kind: str) -> None:
    state = STATES[kind]
    assert icon_kind(state) == kind
    spec = icon_for(state)
    assert spec.kind == kind
    tip = tooltip(state)
    assert tip.startswith(f"Consentry: {kind}")
    menu = build_menu(state)
    assert menu[0].label == tip and menu[0].action is None  # the state in words heads the menu too
    names = [e.label.split(":")[0] for e in menu]
    assert names[2:6] == ["Keyboard", "Mouse", "Apps", "Files"]
    assert isinstance(menu[-1].action, Quit)
    if kind == "paused":
        assert _entry(menu, "Resume").action == Resume()
    elif kind == "off":  # nothing granted, so nothing captured: nothing to pause
        assert _entry(menu, "Nothing to pause").action is None
    else:
        assert _entry(menu, "Pause capture")


def test_the_five_icons_differ_in_shape_and_colour() -> None:
    assert len({spec.shape for spec in ICONS.values()}) == 5
    assert len({spec.colour for spec in ICONS.values()}) == 5


def test_an_unconfirmed_state_shows_unknown_and_keeps_every_withdrawal_one_click_away() -> None:
    state = TrayState.unknown_state("the agent does not answer (timed out)", page_available=True)
    assert icon_kind(state) == "unknown" and icon_for(state).shape == "question"
    assert tooltip(state) == "Consentry: state unknown - the agent does not answer (timed out)"
    menu = build_menu(state)
    assert menu[0].label == tooltip(state) and menu[1].label == "Check with: consentry status"
    for category in Category:
        entry = _entry(menu, category.value.capitalize())
        assert entry.label.endswith("state unknown - Revoke") and entry.action == Revoke(category)
    assert _entry(menu, "Pause capture").children  # pausing narrows: always offered
    # Nothing else outranks it: a stale problem, pause or capture is never shown as if confirmed.
    report = {"policy": {"state": "ok"}, "agent": {"running": False, "unreachable": "timed out"}}
    assert icon_kind(TrayState.from_report(report, page_available=False)) == "unknown"


def test_problem_outranks_pause_and_pause_outranks_capturing() -> None:
    both = _state({"mouse": ("granted", "capturing")}, paused_until="indefinitely", problems=("x",))
    assert icon_kind(both) == "problem"
    paused = _state({"mouse": ("granted", "capturing")}, paused_until="indefinitely")
    assert icon_kind(paused) == "paused"
    assert "until you resume" in tooltip(paused)


def test_revoking_is_one_click_and_granting_only_opens_the_notice() -> None:
    state = _state(
        {
            "keyboard": ("granted", "capturing"),
            "mouse": ("suspended", "suspended"),
            "apps": ("forbidden", "forbidden_by_policy"),
        }
    )
    menu = build_menu(state)
    keyboard = _entry(menu, "Keyboard")
    assert keyboard.label == "Keyboard: capturing - Revoke" and keyboard.action == Revoke(Category.KEYBOARD)
    assert keyboard.children == ()  # top level: one click
    assert _entry(menu, "Mouse").action == Revoke(Category.MOUSE)  # a suspended grant can still be withdrawn
    assert _entry(menu, "Apps").label == "Apps: not offered by IT policy" and not _entry(menu, "Apps").enabled
    assert _entry(menu, "Files").action == OpenPage("/consent/files")
    # Nothing in any menu grants by itself: the only actions are these.
    for st in [state, *STATES.values()]:
        for entry in _walk(build_menu(st)):
            assert entry.action is None or isinstance(entry.action, Revoke | OpenPage | Pause | Resume | Quit)


def test_without_a_local_page_the_menu_names_the_cli_commands() -> None:
    menu = build_menu(_state(page=False, waiting=2))
    files = _entry(menu, "Files")
    assert files.action is None and "consentry consent grant files" in files.label
    assert _entry(menu, "See my data").label == "See my data: run consentry mydata"
    assert _entry(menu, "Batches waiting for me (2)").action is None


def test_pause_choices_and_their_ends() -> None:
    pause = _entry(build_menu(_state({"keyboard": ("granted", "capturing")})), "Pause capture")
    assert [c.action for c in pause.children] == [Pause("15m"), Pause("1h"), Pause("tomorrow")]
    assert pause_end("15m", NOW) == NOW + timedelta(minutes=15)
    assert pause_end("1h", NOW) == NOW + timedelta(hours=1)
    tomorrow = pause_end("tomorrow", NOW).astimezone()
    assert (tomorrow.hour, tomorrow.minute) == (0, 0) and tomorrow.date() == NOW.astimezone().date() + timedelta(1)


def test_state_from_the_status_report() -> None:
    report: dict[str, Any] = {
        "policy": {"state": "ok"},
        "agent": {"pid": 42, "categories": {}},
        "paused_until": None,
        "release": {"batches": {"held": 3, "shipped": 9}, "problems": []},
        "categories": {
            "keyboard": {"consent": "granted", "capture": {"state": "capturing", "reason": None}},
            "mouse": {"consent": "granted", "capture": {"state": "excluded_app_focused", "reason": None}},
            "apps": {"consent": "revoked", "capture": {"state": "revoked"}},
            "files": {"consent": "not_granted", "capture": {"state": "not_granted"}},
        },
    }
    state = TrayState.from_report(report, page_available=True)
    assert icon_kind(state) == "capturing" and state.batches_waiting == 3
    assert "3 batches waiting" in tooltip(state)
    assert _entry(build_menu(state), "Batches waiting for me (3)").action == OpenPage("/batches")
    assert _entry(build_menu(state), "Mouse").label.startswith("Mouse: stopped (an excluded app has focus)")
    assert _entry(build_menu(state), "Apps").label.startswith("Apps: withdrawn")
    # No agent while something is granted: a problem, not a quiet "off".
    stopped = TrayState.from_report({**report, "agent": {"running": False}}, page_available=False)
    assert icon_kind(stopped) == "problem" and "agent is not running" in tooltip(stopped)
    invalid = TrayState.from_report({**report, "policy": {"state": "invalid"}}, page_available=False)
    assert icon_kind(invalid) == "problem"
    assert _entry(build_menu(invalid), "Files").label == "Files: stopped (the machine policy is invalid)"


def test_backend_is_xorg_without_gtk_and_an_explicit_choice_wins() -> None:
    if sys.platform.startswith("linux"):
        expected = None if importlib.util.find_spec("gi") else "xorg"
        assert choose_backend({}) == expected
        assert choose_backend({"PYSTRAY_BACKEND": "gtk"}) == "gtk"


def _pixel(image: Any, x: int, y: int) -> tuple[int, int, int]:
    r, g, b, *_ = image.getpixel((x, y))
    return (r, g, b)


def test_icons_are_drawn_as_their_spec_says() -> None:
    size = 64
    disc, ring = render(ICONS["capturing"], size), render(ICONS["off"], size)
    bars, triangle = render(ICONS["paused"], size), render(ICONS["problem"], size)
    background = (236, 236, 236)
    assert _pixel(disc, 32, 32) == ICONS["capturing"].colour
    assert _pixel(ring, 32, 32) == background and _pixel(ring, 10, 32) == ICONS["off"].colour
    assert _pixel(bars, 32, 32) == background and _pixel(bars, 22, 32) == ICONS["paused"].colour
    assert _pixel(triangle, 32, 30) == (255, 255, 255) and _pixel(triangle, 20, 50) == ICONS["problem"].colour


# --- actions against a real vault (no agent) ------------------------------------------------------


def _ledger(layout: Layout) -> list[tuple[str, dict[str, Any]]]:
    with Vault.open(layout, create=False) as vault:
        return [(e.kind, e.body) for e in vault.ledger.entries()]


def test_every_menu_action_on_a_fresh_home_never_grants(layout: Layout) -> None:
    opened: list[str] = []
    state = read_state()
    assert icon_kind(state) == "off" and not state.page_available
    for entry in _walk(build_menu(state)):
        if entry.action is None or isinstance(entry.action, Quit):
            continue
        if isinstance(entry.action, OpenPage):
            outcome = actions.open_page(entry.action, opener=lambda url: bool(opened.append(url)) or True)
            assert not outcome.ok and "consentry" in outcome.message  # no page: the CLI command instead
        else:
            assert actions.perform(entry.action).ok
    assert opened == []
    # Nothing granted, so nothing to pause: no menu action on a fresh home writes anything at all.
    assert not layout.vault_db.exists()


def test_grant_opens_the_notice_page_with_its_token_and_records_nothing(layout: Layout) -> None:
    layout.runtime_dir.mkdir(parents=True)
    write_page_link(layout.page_link, url="http://127.0.0.1:45678/", token="tok/en+1")
    state = read_state()
    assert state.page_available
    opened: list[str] = []
    files = _entry(build_menu(state), "Files")
    assert isinstance(files.action, OpenPage)
    outcome = actions.open_page(files.action, opener=lambda url: bool(opened.append(url)) or True)
    # The browser is handed a 0600 file that forwards to the page: the token is never on its command line.
    forwarder = layout.runtime_dir / "open-page.html"
    assert outcome.ok and opened == [forwarder.as_uri()] and forwarder.stat().st_mode & 0o077 == 0
    assert "http://127.0.0.1:45678/consent/files?token=tok%2Fen%2B1" in forwarder.read_text()
    assert not layout.vault_db.exists()  # opening the notice wrote nothing: the page asks to confirm


def test_a_broken_vault_shows_a_problem_and_actions_change_nothing(layout: Layout) -> None:
    layout.home.mkdir(parents=True)
    layout.vault_db.write_bytes(b"this is not a database")
    layout.vault_db.chmod(0o600)
    state = read_state()
    assert icon_kind(state) == "problem"
    outcome = actions.perform(Revoke(Category.KEYBOARD))
    assert not outcome.ok and "Traceback" not in outcome.message
    assert layout.vault_db.read_bytes() == b"this is not a database"


# --- the real thing: Xvfb, a real tray host, the real agent ---------------------------------------


@pytest.fixture
def x() -> XServer:
    with x_server(window_manager=False) as server:
        yield server  # type: ignore[misc]


@pytest.mark.x11
def test_the_tray_docks_in_a_real_tray_host_and_its_menu_revokes(
    x: XServer, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    require(sys.platform.startswith("linux"), "an X11 desktop", "Linux only")
    require(importlib.util.find_spec("tkinter") is not None, "Tk (the X11 tray's menu)", "apt-get install python3-tk")
    env = agent_env(layout.home, policy_path, x.display)
    opened = tmp_path / "opened-url"
    browser = tmp_path / "browser"  # stands in for the employee's browser: notes what it was asked to open
    browser.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" > {opened}\n")
    browser.chmod(0o700)
    env["BROWSER"] = str(browser)
    tray_log = (tmp_path / "tray.log").open("wb")
    # The tray starts before the panel, as autostart may order them: it must dock once a host appears.
    tray = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "tray", "--refresh", "0.3"],
        env=env,
        cwd=ROOT,
        stdout=tray_log,
        stderr=subprocess.STDOUT,
    )
    agent = None
    try:
        x.wait_for(lambda: find_window(x, "consentrySystemTrayIcon")[1] is not None, "the tray's window")
        tray_host(x)
        x.wait_for(lambda: "panel" in (docked_icon(x) or ("", []))[1], "the tray icon to dock")
        name, _ = docked_icon(x) or ("", [])
        assert name == "Consentry: off - nothing is captured"  # the tooltip: the state in words
        off = screenshot(x, "consentrySystemTrayIcon", tmp_path / "tray-off.png")
        w, h = off.size
        assert _pixel(off, w // 2, h // 2) == (236, 236, 236)  # the grey ring's empty middle

        agent = AgentProcess(layout, env)
        agent.wait_status(lambda s: True, "the agent's first status")
        grant(layout, policy_path, Category.KEYBOARD)
        agent.wait_state("keyboard", "capturing")
        wait_title(x, "Consentry: capturing keyboard")  # the icon turns green
        on = screenshot(x, "consentrySystemTrayIcon", tmp_path / "tray-capturing.png")
        save_image(on, "tray-capturing.png")  # the docs' picture (tests/doc_shots.py)
        assert _pixel(on, w // 2, h // 2) == ICONS["capturing"].colour

        # The employee clicks the icon: the menu opens; its first active line revokes keyboard.
        click_icon(x)
        x.wait_for(lambda: mapped_menu(x), "the tray menu to open")
        save_image(screenshot(x, "!menu", tmp_path / "tray-menu.png"), "tray-menu.png")
        x.xdotool("key", "Down")
        x.xdotool("key", "Return")
        agent.wait_state("keyboard", "revoked")
        kind, body = _ledger(layout)[-1]
        assert kind == "revoke" and body["categories"] == ["keyboard"] and body["method"] == "tray"
        wait_title(x, "Consentry: off")  # the icon goes grey

        # Granting from the tray only opens the notice on the agent's local page; the page asks to confirm.
        click_icon(x)  # pystray re-docks on each new image, so the icon may have moved in the panel
        x.wait_for(lambda: mapped_menu(x), "the tray menu to open again")
        screenshot(x, "!menu", tmp_path / "tray-menu-after-revoke.png")
        x.xdotool("key", "Down")
        x.xdotool("key", "Return")
        x.wait_for(lambda: opened.exists() and bool(opened.read_text().strip()), "the browser to be asked")
        forwarder = opened.read_text().strip()  # a 0600 file:// forwarder, never the token itself
        url = page_link(layout.page_link, "/consent/keyboard")
        assert (
            forwarder == (layout.runtime_dir / "open-page.html").as_uri()
            and url
            and url in Path(forwarder.removeprefix("file://")).read_text()
        )
        notice = httpx.get(url, follow_redirects=True, timeout=20)
        assert notice.status_code == 200 and "keyboard" in notice.text.lower()
        assert [kind for kind, _ in _ledger(layout)].count("grant") == 1  # only the first grant, no new one

        # A second tray for the same user refuses, with a sentence.
        second = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", "tray"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert second.returncode == 1 and "already running" in second.stderr and "Traceback" not in second.stderr
    finally:
        if agent is not None:
            assert agent.stop() == 0
        tray.terminate()
        tray.wait(timeout=10)
        tray_log.close()
    assert "Traceback" not in (tmp_path / "tray.log").read_text()


@pytest.mark.x11
def test_the_menu_model_revokes_and_pauses_a_real_agent(x: XServer, layout: Layout, policy_path: Path) -> None:
    agent = AgentProcess(layout, agent_env(layout.home, policy_path, x.display))
    try:
        agent.wait_status(lambda s: True, "the agent's first status")
        grant(layout, policy_path, Category.KEYBOARD, Category.MOUSE)
        agent.wait_state("keyboard", "capturing")
        agent.wait_state("mouse", "capturing")

        menu = build_menu(read_state())
        revoke = _entry(menu, "Keyboard: capturing - Revoke")
        assert revoke.action is not None
        outcome = actions.perform(revoke.action)
        assert outcome.ok and "agent confirmed" in outcome.message
        # The agent confirmed before perform returned: its status says so without waiting.
        assert agent.status()["categories"]["keyboard"]["state"] == "revoked"  # type: ignore[index]
        kind, body = _ledger(layout)[-1]
        assert kind == "revoke" and body["categories"] == ["keyboard"] and body["method"] == "tray"

        before = utc_now()
        menu = build_menu(read_state())
        fifteen = _entry(menu, "For 15 minutes")
        assert fifteen.action == Pause("15m")
        assert actions.perform(fifteen.action).ok
        assert agent.status()["categories"]["mouse"]["state"] == "paused"  # type: ignore[index]
        kind, body = _ledger(layout)[-1]
        assert kind == "pause" and body["method"] == "tray"
        until = parse_iso(body["until"])
        assert before + timedelta(minutes=15) <= until <= utc_now() + timedelta(minutes=15)

        state = read_state()
        assert icon_kind(state) == "paused"
        resume = _entry(build_menu(state), "Resume capture")
        assert resume.action is not None and actions.perform(resume.action).ok
        agent.wait_state("mouse", "capturing")
        assert _ledger(layout)[-1][0] == "resume"
        assert icon_kind(read_state()) == "capturing"
        assert _entry(build_menu(read_state()), "Keyboard").label.startswith("Keyboard: withdrawn")
    finally:
        assert agent.stop() == 0


# --- autostart ------------------------------------------------------------------------------------


def test_the_tray_autostarts_with_the_session() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    desktop.read(ROOT / "packaging" / "linux" / "consentry-tray.desktop")
    entry = desktop["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].split()[-1] == "tray"
    assert entry["Exec"].split()[0] == "/opt/consentry/bin/consentry"
    agent_entry = configparser.ConfigParser(interpolation=None)
    agent_entry.read(ROOT / "packaging" / "linux" / "consentry-agent.desktop")
    # The agent's entry runs a script that defers to the systemd user unit; it starts the same install.
    assert agent_entry["Desktop Entry"]["Exec"].split()[0] == "/usr/libexec/consentry/agent-autostart"
    assert entry["Exec"].split()[0] in (ROOT / "packaging" / "linux" / "consentry-agent-autostart").read_text()
    assert entry.get("X-GNOME-Autostart-enabled") == "true" and "NoDisplay" in entry
    from click.testing import CliRunner

    from agent.cli.main import cli

    shown = CliRunner().invoke(cli, ["tray", "--help"])
    assert shown.exit_code == 0 and "system tray" in shown.output
    validator = require_executable("desktop-file-validate", "desktop-file-utils")
    for name in ("consentry-tray.desktop", "consentry-agent.desktop"):
        checked = subprocess.run([validator, str(ROOT / "packaging" / "linux" / name)], capture_output=True, text=True)
        assert checked.returncode == 0 and "error" not in checked.stdout, checked.stdout + checked.stderr


def test_tray_without_a_display_says_so(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    from click.testing import CliRunner

    from agent.cli.main import cli

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(cli, ["tray"])
    assert result.exit_code == 1 and "no graphical session" in result.output


def test_separator_is_not_an_action() -> None:
    assert not SEPARATOR.enabled and SEPARATOR.action is None


def test_only_the_adapter_imports_pystray_and_only_when_the_tray_runs() -> None:
    importers = [
        path.relative_to(ROOT).as_posix()
        for path in [*(ROOT / "agent").rglob("*.py"), *(ROOT / "vault").rglob("*.py")]
        if "import pystray" in path.read_text()
    ]
    assert importers == ["agent/tray/app.py"]
    code = "import sys, agent.cli.main, agent.tray.app, agent.cli.tray_cmd; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "'pystray'" not in out and "'PIL'" not in out and "'tkinter'" not in out


def test_every_capture_and_consent_state_has_words() -> None:
    from agent.status import CaptureState

    for value in [*(s.value for s in CaptureState), "granted", "not_granted", "revoked", "suspended", "forbidden"]:
        words = CategoryView(Category.MOUSE, "granted", value).words
        assert "_" not in words and words, value


@pytest.mark.x11
def test_the_tray_ends_quietly_when_the_session_ends(x: XServer, layout: Layout, policy_path: Path) -> None:
    tray_host(x)
    tray = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "tray", "--refresh", "0.3"],
        env=agent_env(layout.home, policy_path, x.display),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        x.wait_for(lambda: "panel" in (docked_icon(x) or ("", []))[1], "the tray icon to dock")
        x.kill()  # the X server dies, as when the session ends or crashes
        out, _ = tray.communicate(timeout=30)
    finally:
        if tray.poll() is None:
            tray.kill()
            tray.wait()
    assert b"Traceback" not in out, out.decode(errors="replace")


_OPEN_AT_ONCE = """
import sys, time
from vault.paths import Layout
from vault.vault import Vault
layout = Layout(__import__("pathlib").Path(sys.argv[1]))
start = float(sys.argv[2])
while time.time() < start:
    pass
with Vault.open(layout) as vault:
    print(vault.vault_id)
"""


def test_processes_opening_a_new_vault_at_once_all_get_the_same_vault(tmp_path: Path) -> None:
    """The agent creating its vault while the tray (or `consentry status`) opens it: found by the X11 test.

    Before the fix, the opener that lost the race reported a brand-new vault as damaged and the agent
    exited. Several real processes start at the same instant, a few rounds over.
    """
    env = {**__import__("os").environ, "CONSENTRY_KEYSTORE": "file"}
    for round_ in range(2):
        home = tmp_path / f"home{round_}"
        start = time.time() + 3.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_AT_ONCE, str(home), str(start)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        failures = [err for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0]
        assert not failures, failures[0][-600:]
        ids = {out.strip() for out, _ in results}
        assert len(ids) == 1 and ids != {""}


# --- what the tray shows, against its clock ----------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_state_older_than_the_poll_interval_plus_a_margin_shows_unknown() -> None:
    """At the default 2 s interval the icon turns "unknown" 4.5 s after the last confirmed look, within 5 s."""
    clock = _Clock()
    capturing = STATES["capturing"]
    app = TrayApp(refresh_seconds=2.0, read=lambda: capturing, clock=clock)
    assert icon_kind(app.wanted()) == "unknown" and app.wanted().unknown == "not checked yet"
    app.poll()
    assert app.wanted() == capturing
    clock.now += 4.5
    assert app.wanted() == capturing
    clock.now += 0.1
    stale = app.wanted()
    assert icon_kind(stale) == "unknown" and stale.unknown == "not confirmed for over 4.5 s"
    app.poll()
    assert app.wanted() == capturing


def test_a_stuck_look_and_a_failing_look_show_unknown_with_the_reason() -> None:
    clock = _Clock()
    release = threading.Event()
    started = threading.Event()
    calls: list[int] = []

    def read() -> TrayState:
        calls.append(1)
        if len(calls) == 2:  # the second look hangs (a vault lock, a wedged socket, anything)
            started.set()
            release.wait(30)
        if len(calls) == 3:
            raise RuntimeError("a bug")
        return STATES["capturing"]

    app = TrayApp(refresh_seconds=2.0, read=read, clock=clock)
    app.poll()
    stuck = threading.Thread(target=app.poll)
    stuck.start()
    assert started.wait(30)
    assert app.wanted() == STATES["capturing"]  # still fresh
    clock.now += 5.0
    assert app.wanted().unknown == "the tray's look at the agent has not finished for over 4.5 s"
    release.set()
    stuck.join(30)
    assert app.wanted() == STATES["capturing"]
    app.poll()
    assert app.wanted().unknown == "the tray could not read the state (RuntimeError)"
