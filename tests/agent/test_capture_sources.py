"""Minimisation at the source, backend choice, replay and the agent's small files (no X server needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from agent.app_tokens import AppResolver, load_allow_list
from agent.classify import classify_button, classify_key
from agent.cli.agent_cmd import agent as agent_group
from agent.control import notify_consent_changed, query_status
from agent.errors import AlreadyRunning, SourceUnavailable, UnsupportedPlatform
from agent.events import EventBuffer
from agent.excluded_apps import read_excluded_apps, write_excluded_apps
from agent.file_paths import minimize_path, root_class_for, watched_roots
from agent.instance import InstanceLock
from agent.sources import SourceContext, SourceKind, make_source
from agent.sources.focus import FocusSource
from agent.sources.macos_focus import MacFocusBackend
from agent.sources.replay import ReplaySource
from agent.sources.replay_stream import SyntheticSpec, read_recording, synthetic_stream, write_recording
from agent.sources.session import NO_DISPLAY_REASON, WAYLAND_REASON, session_problem
from agent.sources.windows_focus import WindowsFocusBackend
from agent.watched_folders import read_watched_folders, write_watched_folders
from protocol.categories import AppCategory, KeyClass, MouseButton, RootClass
from protocol.windows import MAX_FILE_DEPTH
from vault.paths import Layout
from vault.policy import MachinePolicy

SECRET = b"k" * 32


def _resolver(policy: MachinePolicy | None = None, employee: tuple[str, ...] = ()) -> AppResolver:
    return AppResolver.for_policy(policy or MachinePolicy(), employee, SECRET)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (SimpleNamespace(char="a"), KeyClass.LETTER),
        (SimpleNamespace(char="B"), KeyClass.LETTER),
        (SimpleNamespace(char="é"), KeyClass.LETTER),
        (SimpleNamespace(char="7"), KeyClass.DIGIT),
        (SimpleNamespace(char=" "), KeyClass.SPACE),
        (SimpleNamespace(char=";"), KeyClass.PUNCTUATION),
        (SimpleNamespace(char="\x03"), KeyClass.OTHER),  # ctrl+c
        (SimpleNamespace(char=None, vk=269025042), KeyClass.OTHER),  # a media key without a character
        (SimpleNamespace(name="space"), KeyClass.SPACE),
        (SimpleNamespace(name="shift_r"), KeyClass.MODIFIER),
        (SimpleNamespace(name="page_down"), KeyClass.NAVIGATION),
        (SimpleNamespace(name="backspace"), KeyClass.EDITING),
        (SimpleNamespace(name="delete"), KeyClass.EDITING),
        (SimpleNamespace(name="f11"), KeyClass.FUNCTION),
        (SimpleNamespace(name="enter"), KeyClass.OTHER),
    ],
)
def test_a_key_becomes_only_its_class(key: object, expected: KeyClass) -> None:
    assert classify_key(key) is expected


def test_mouse_buttons_map_to_the_closed_vocabulary() -> None:
    assert classify_button("left") is MouseButton.LEFT
    assert classify_button("x2") is MouseButton.OTHER
    assert classify_button(None) is MouseButton.OTHER


def test_allow_listed_apps_become_categories_and_others_keyed_tokens() -> None:
    resolver = _resolver()
    assert resolver.resolve("Code", "code").token == "cat:ide"
    assert resolver.resolve("firefox.exe").token == "cat:browser"
    assert resolver.resolve("XTerm", "xterm").token == "cat:terminal"
    token = resolver.resolve("InHouseTool", "inhouse").token
    assert token is not None and token.startswith("anon:") and len(token) == 21
    assert token == resolver.resolve("inhousetool").token  # case-insensitive, stable on this machine
    assert token != AppResolver.for_policy(MachinePolicy(), (), b"j" * 32).resolve("InHouseTool").token
    assert resolver.resolve().token is None


def test_policy_app_categories_extend_the_allow_list() -> None:
    policy = MachinePolicy(app_categories={"InHouseTool": AppCategory.OFFICE})
    assert _resolver(policy).resolve("inhousetool").token == "cat:office"


def test_excluded_apps_match_class_or_instance_from_policy_and_employee() -> None:
    resolver = _resolver(MachinePolicy(excluded_apps=("bankapp",)), employee=("hr-portal",))
    assert resolver.resolve("KeePassXC", "xterm").excluded is True  # the policy adds to the defaults (a floor)
    assert resolver.resolve("xterm").excluded is False
    assert resolver.resolve("Foo", "bankapp").excluded is True
    assert resolver.resolve("HR-Portal").excluded is True
    assert _resolver().resolve("xterm", "keepassxc").excluded is True


def test_the_shipped_allow_list_is_valid() -> None:
    allow = load_allow_list()
    assert allow["firefox"] is AppCategory.BROWSER and allow["org.gnome.nautilus"] is AppCategory.FILE_MANAGER
    assert len(allow) > 50


def test_file_paths_become_root_class_depth_and_allowed_extension() -> None:
    home = PurePosixPath("/home/ann")
    roots = watched_roots(
        [
            PurePosixPath("/home/ann/Documents"),
            PurePosixPath("/home/ann/Documents/projects"),
            PurePosixPath("/home/ann"),
        ],
        home,
    )
    exts = frozenset({"md", "py"})
    assert minimize_path("/home/ann/Documents/a.md", roots, exts) == (RootClass.DOCUMENTS, 0, "md")
    assert minimize_path("/home/ann/Documents/x/y/Salary.XLSX", roots, exts) == (RootClass.DOCUMENTS, 2, None)
    assert minimize_path("/home/ann/Documents/projects/app/main.py", roots, exts) == (
        RootClass.PROJECTS,
        1,
        "py",
    )
    assert minimize_path("/home/ann/.bashrc", roots, exts) == (RootClass.HOME, 0, None)
    assert minimize_path("/etc/passwd", roots, exts) is None
    assert minimize_path("/home/annette/a.md", [roots[-1]], exts) is None  # a prefix is not a parent
    deep = "/home/ann/Documents/" + "d/" * 40 + "f.md"
    assert minimize_path(deep, roots, exts) == (RootClass.DOCUMENTS, MAX_FILE_DEPTH, "md")
    assert root_class_for(PurePosixPath("/data/Downloads"), home) is RootClass.DOWNLOADS
    assert root_class_for(PurePosixPath("/data/clients"), home) is RootClass.OTHER


def test_native_wayland_is_reported_even_with_xwayland_display() -> None:
    assert session_problem("linux", {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == WAYLAND_REASON
    assert session_problem("linux", {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}) == WAYLAND_REASON
    assert session_problem("linux", {"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}) is None
    assert session_problem("linux", {}) == NO_DISPLAY_REASON
    assert session_problem("darwin", {}) is None
    assert "root" not in WAYLAND_REASON and "sudo" not in WAYLAND_REASON


def test_live_sources_on_wayland_are_unavailable_when_started(tmp_path: Path) -> None:
    ctx = SourceContext(home=tmp_path, resolver=_resolver, platform="linux", env={"WAYLAND_DISPLAY": "wayland-0"})
    for kind in (SourceKind.KEYBOARD, SourceKind.MOUSE, SourceKind.FOCUS):
        source = make_source(kind, ctx)  # choosing never fails...
        with pytest.raises(SourceUnavailable, match="Wayland"):
            source.start(EventBuffer())  # ...using does


def test_an_unsupported_platform_is_an_error_when_used_not_at_import(tmp_path: Path) -> None:
    ctx = SourceContext(home=tmp_path, resolver=_resolver, platform="sunos5", env={})
    for kind in (SourceKind.KEYBOARD, SourceKind.FOCUS):
        with pytest.raises(UnsupportedPlatform):
            make_source(kind, ctx).start(EventBuffer())


class _FakeForeground:
    """The Win32 edge: which process is in front, and its executable."""

    def __init__(self) -> None:
        self.pid: int | None = 42

    def foreground_pid(self) -> int | None:
        return self.pid

    def image_path(self, pid: int) -> str | None:
        return r"C:\Program Files\Mozilla Firefox\firefox.exe" if pid == 42 else None


class _FakeApp:
    def localizedName(self) -> str:
        return "1Password"

    def bundleIdentifier(self) -> str:
        return "com.1password.1password"


class _FakeWorkspace:
    def frontmostApplication(self) -> _FakeApp:
        return _FakeApp()


def test_windows_and_macos_focus_backends_feed_the_same_focus_source() -> None:
    api = _FakeForeground()
    windows = WindowsFocusBackend(api)
    assert windows.focused_names() == ("firefox.exe",)
    api.pid = None
    assert windows.focused_names() == ()
    api.pid = 42
    for backend, expected in (
        (windows, ("cat:browser", False)),
        (MacFocusBackend(_FakeWorkspace()), (None, True)),
    ):
        buffer = EventBuffer()
        source = FocusSource(lambda b=backend: b, _resolver, poll_seconds=0.01)
        source.start(buffer)
        time.sleep(0.1)
        source.stop()
        samples = buffer.take_until(float("inf"))
        assert len(samples) >= 2
        token, excluded = samples[-1][2], samples[-1][3]
        assert excluded == expected[1]
        if expected[0] is not None:
            assert token == expected[0]
        assert all(isinstance(s[0], float) and s[0] <= s[1] for s in samples)


def test_synthetic_streams_are_deterministic_per_seed() -> None:
    spec = SyntheticSpec(seed=3, seconds=30, key_rate=8, move_rate=50, file_rate=1)
    for kind in SourceKind:
        assert list(synthetic_stream(spec, kind)) == list(synthetic_stream(spec, kind))
    other = SyntheticSpec(seed=4, seconds=30, key_rate=8, move_rate=50)
    assert list(synthetic_stream(spec, SourceKind.KEYBOARD)) != list(synthetic_stream(other, SourceKind.KEYBOARD))
    assert SyntheticSpec.parse("seed=3,seconds=30,key_rate=8,move_rate=50,file_rate=1") == spec


def test_a_recording_replays_exactly_the_synthetic_stream_it_was_made_from(tmp_path: Path) -> None:
    spec = SyntheticSpec(seed=9, seconds=20, key_rate=5, move_rate=20, click_rate=1, scroll_rate=1, file_rate=1)
    path = tmp_path / "rec.jsonl"
    count = write_recording(path, spec)
    total = 0
    for kind in SourceKind:
        expected = [(round(t, 6), p) for t, p in synthetic_stream(spec, kind)]
        got = list(read_recording(path, kind))
        assert got == expected
        total += len(got)
    assert total == count
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "other", "version": 1}\n')
    with pytest.raises(ValueError, match="header"):
        list(read_recording(bad, SourceKind.KEYBOARD))
    bad.write_text('{"format": "consentry-replay", "version": 1}\n{"t": 1, "type": "key", "char": "a"}\n')
    with pytest.raises(ValueError, match="line 2"):
        list(read_recording(bad, SourceKind.KEYBOARD))


def test_the_replay_source_paces_events_through_a_sink() -> None:
    spec = SyntheticSpec(seed=1, seconds=2, key_rate=50)
    buffer = EventBuffer()
    source = ReplaySource(SourceKind.KEYBOARD, lambda: synthetic_stream(spec, SourceKind.KEYBOARD), speed=20.0)
    source.start(buffer)
    deadline = time.monotonic() + 5
    expected = len(list(synthetic_stream(spec, SourceKind.KEYBOARD)))
    while len(buffer) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop()
    events = buffer.take_until(float("inf"))
    assert len(events) == expected
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    assert all(isinstance(e[1], KeyClass) and len(e) == 2 for e in events)


def test_employee_settings_round_trip_owner_only(layout: Layout, tmp_path: Path) -> None:
    write_excluded_apps(layout, ["  BankApp ", "bankapp", "HR"])
    assert read_excluded_apps(layout).apps == ("bankapp", "hr")
    write_watched_folders(layout, [tmp_path / "Documents", tmp_path / "Documents"])
    assert read_watched_folders(layout).folders == (tmp_path / "Documents",)
    for name in ("excluded_apps.json", "watched_folders.json"):
        assert stat.S_IMODE((layout.home / name).stat().st_mode) == 0o600
    (layout.home / "watched_folders.json").write_text('{"version": 1, "folders": ["relative"]}')
    with pytest.raises(ValueError):
        read_watched_folders(layout)


def test_one_agent_lock_per_employee(layout: Layout) -> None:
    with InstanceLock(layout.agent_lock), pytest.raises(AlreadyRunning, match=str(os.getpid())):
        InstanceLock(layout.agent_lock).acquire()
    with InstanceLock(layout.agent_lock):
        pass  # released


def test_control_client_reports_no_agent(layout: Layout) -> None:
    assert notify_consent_changed(layout, timeout=1.0) is False
    assert query_status(layout, timeout=1.0) is None


def test_cli_rejects_a_missing_recording_and_makes_one(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(agent_group, ["run", "--replay", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "recording" in result.output
    out = tmp_path / "rec.jsonl"
    result = runner.invoke(agent_group, ["make-recording", str(out), "--seconds", "5", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith('{"format": "consentry-replay"')


def test_importing_the_agent_and_its_cli_loads_no_capture_backend() -> None:
    code = (
        "import sys, agent, agent.cli.agent_cmd, agent.daemon, agent.runner, agent.sources, agent.control;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pynput', 'Xlib', 'watchdog', 'AppKit')];"
        "print(','.join(bad))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ""
