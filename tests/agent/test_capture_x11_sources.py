"""Live sources against a real X server: pynput keyboard/mouse and the X11 focus backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.app_tokens import AppResolver
from agent.events import CLICK, MOVE, SCROLL, EventBuffer
from agent.sources.focus import FocusSource
from agent.sources.pynput_input import PynputKeyboardSource, PynputMouseSource
from agent.sources.x11_focus import X11FocusBackend
from devkit.xserver import XServer, x_server
from protocol.categories import KeyClass, MouseButton
from vault.policy import MachinePolicy

pytestmark = pytest.mark.x11


@pytest.fixture(scope="module")
def x() -> Iterator[XServer]:
    with x_server(window_manager=True) as server:
        yield server


@pytest.fixture
def on_display(x: XServer, monkeypatch: pytest.MonkeyPatch) -> XServer:
    """pynput opens its display connections from this process's DISPLAY."""
    monkeypatch.setenv("DISPLAY", x.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return x


def _drain(buffer: EventBuffer, expected: int, timeout: float = 10.0) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while len(buffer) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # anything extra would show up now
    return buffer.take_until(float("inf"))


def test_keyboard_source_delivers_only_classes_of_presses(on_display: XServer) -> None:
    buffer = EventBuffer()
    x = on_display
    source = PynputKeyboardSource("linux", x.env)
    source.start(buffer)
    try:
        x.type("Ab 1;")  # shift+A, b, space, 1, ;
        x.xdotool("key", "BackSpace", "Delete", "Left", "F5", "Return")
        events = _drain(buffer, 11)
    finally:
        source.stop()
    assert all(len(e) == 2 and isinstance(e[0], float) and isinstance(e[1], KeyClass) for e in events)
    assert [e[1] for e in events] == [
        KeyClass.MODIFIER,
        KeyClass.LETTER,
        KeyClass.LETTER,
        KeyClass.SPACE,
        KeyClass.DIGIT,
        KeyClass.PUNCTUATION,
        KeyClass.EDITING,
        KeyClass.EDITING,
        KeyClass.NAVIGATION,
        KeyClass.FUNCTION,
        KeyClass.OTHER,
    ]


def test_mouse_source_counts_moves_presses_and_scroll_steps(on_display: XServer) -> None:
    buffer = EventBuffer()
    x = on_display
    source = PynputMouseSource("linux", x.env)
    source.start(buffer)
    try:
        x.xdotool("mousemove", "50", "60", "click", "1", "click", "3", "click", "4", "click", "5")
        events = _drain(buffer, 5)
    finally:
        source.stop()
    kinds = [e[1] for e in events]
    assert MOVE in kinds
    assert [e[2] for e in events if e[1] == CLICK] == [MouseButton.LEFT, MouseButton.RIGHT]
    assert sum(e[2] for e in events if e[1] == SCROLL) == 2


def test_pynput_receives_every_key_xdotool_sends(on_display: XServer) -> None:
    buffer = EventBuffer()
    x = on_display
    source = PynputKeyboardSource("linux", x.env)
    source.start(buffer)
    try:
        x.type("abcdefghij" * 30, delay_ms=0)
        events = _drain(buffer, 300)
    finally:
        source.stop()
    assert len(events) == 300


def test_x11_focus_reads_wm_class_with_a_window_manager(x: XServer) -> None:
    window = x.open_window("xterm", "-class", "ProbeFocus", "-title", "Private Title")
    x.activate(window)
    backend = X11FocusBackend(x.display)
    try:
        names = backend.focused_names()
    finally:
        backend.close()
    assert names == ("ProbeFocus", "xterm")  # WM_CLASS only; the title is never read


def test_x11_focus_walks_up_from_the_input_focus_without_a_window_manager() -> None:
    with x_server(window_manager=False) as bare:
        window = bare.open_window("xterm", "-class", "NoWindowManager")
        backend = X11FocusBackend(bare.display)
        try:
            assert backend.focused_names() == ()  # nothing focused yet
            bare.xdotool("windowfocus", "--sync", window)
            assert backend.focused_names() == ("NoWindowManager", "xterm")
        finally:
            backend.close()


def test_focus_source_reports_tokens_and_exclusions_and_a_dead_display(x: XServer) -> None:
    with x_server(window_manager=True) as own:
        own.activate(own.open_window("xterm", "-class", "KeePassXC"))
        resolver = AppResolver.for_policy(MachinePolicy(), (), b"s" * 32)
        buffer = EventBuffer()
        source = FocusSource(lambda: X11FocusBackend(own.display), lambda: resolver, poll_seconds=0.05)
        source.start(buffer)
        try:
            time.sleep(0.2)
            samples = buffer.take_until(float("inf"))
            assert samples and all(s[3] is True for s in samples)  # keepassxc is excluded by default
            own.activate(own.open_window("xterm"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(s[2] == "cat:terminal" and not s[3] for s in samples):
                time.sleep(0.05)
                samples += buffer.take_until(float("inf"))
            assert any(s[2] == "cat:terminal" and not s[3] for s in samples)
            own.kill()
            deadline = time.monotonic() + 5
            while buffer.problem is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert buffer.problem == "lost the connection to the X display"
        finally:
            source.stop()


def test_a_key_pressed_the_moment_the_source_has_started_is_captured(on_display: XServer) -> None:
    """``start`` returning is when the agent says "capturing": from then on no press may be missed.

    pynput reports its X listener ready a moment before the server records (XRecord's StartOfData).
    xdotool is a process of its own and cannot press inside that moment; XTest from this process can.
    Before the fix about 2 of 100 such presses were lost here.
    """
    from Xlib import X, display
    from Xlib.ext import xtest

    x = on_display
    control = display.Display(x.display)
    keycode = control.keysym_to_keycode(ord("a"))
    missed = 0
    try:
        for _ in range(200):
            buffer = EventBuffer()
            source = PynputKeyboardSource("linux", x.env)
            source.start(buffer)
            try:
                xtest.fake_input(control, X.KeyPress, keycode)
                xtest.fake_input(control, X.KeyRelease, keycode)
                control.sync()
                deadline = time.monotonic() + 2.0
                while not len(buffer) and time.monotonic() < deadline:
                    time.sleep(0.002)
            finally:
                source.stop()
            missed += len(buffer.take_until(float("inf"))) != 1
    finally:
        control.close()
    assert missed == 0, f"{missed} of 200 presses made right after start() were not captured"
