"""The capture core in virtual time: windows, cuts, drops and the exclusion horizon."""

from __future__ import annotations

from agent.capture import Capture
from agent.clock import ManualClock
from agent.events import EventBuffer
from agent.sources.base import SourceKind
from protocol.categories import Category, KeyClass
from protocol.windows import KEYBOARD_MIN_PRESSES, KeyboardWindow

T0 = 1_700_000_000.0  # aligned to 10 s
# Counted windows hold multiples of this many presses: fewer and a window is sparse (counts withheld).
K = KEYBOARD_MIN_PRESSES


def _capture(wall: float = T0 + 2) -> tuple[Capture, ManualClock]:
    clock = ManualClock(wall=wall)
    return Capture(10, clock), clock


def _press(capture: Capture, clock: ManualClock, n: int = 1) -> None:
    for _ in range(n):
        capture.buffers[SourceKind.KEYBOARD].put((clock.monotonic(), KeyClass.LETTER))


def _letters(records: list) -> int:  # type: ignore[type-arg]
    return sum(r.key_counts[KeyClass.LETTER] for r in records if isinstance(r, KeyboardWindow))


def _typing_in_an_ide() -> tuple[Capture, ManualClock, EventBuffer, float]:
    """Keyboard (grant r1) and apps (grant r2) open, a focus source running and an IDE focused at ``start``."""
    capture, clock = _capture()
    focus = capture.buffers[SourceKind.FOCUS]
    capture.focus_started()
    start = clock.monotonic()
    focus.put((start, start, "cat:ide", False))
    capture.begin(Category.KEYBOARD, "r1")
    capture.begin(Category.APPS, "r2")
    return capture, clock, focus, start


def test_windows_close_at_aligned_boundaries_and_empty_ones_are_skipped() -> None:
    capture, clock = _capture()
    capture.begin(Category.KEYBOARD, "r1")
    _press(capture, clock, 3 * K)
    clock.advance(5)
    assert capture.pump() == []  # the window is still open
    clock.advance(4)  # now T0 + 11
    _press(capture, clock, 2 * K)
    first = capture.pump()
    assert [(r.start, r.end) for r in first] == [(int(T0), int(T0) + 10)]
    assert _letters(first) == 3 * K
    clock.advance(40)  # three quiet windows pass
    second = capture.pump()
    assert [(r.start, r.end) for r in second] == [(int(T0) + 10, int(T0) + 20)]
    assert _letters(second) == 2 * K and second[0].receipt_id == "r1"


def test_a_cut_window_ends_at_the_cut_and_the_next_does_not_overlap() -> None:
    capture, clock = _capture()
    capture.begin(Category.KEYBOARD, "r1")
    _press(capture, clock, 2)
    clock.advance(3.3)  # T0 + 5.3
    cut = capture.cut(Category.KEYBOARD)
    assert [(r.start, r.end) for r in cut] == [(int(T0), int(T0) + 6)]
    clock.advance(0.2)
    capture.begin(Category.KEYBOARD, "r1")
    _press(capture, clock)
    clock.advance(10)
    again = capture.pump()
    assert [(r.start, r.end) for r in again] == [(int(T0) + 6, int(T0) + 10)]


def test_drop_forgets_buffered_events_and_the_open_window() -> None:
    capture, clock = _capture()
    capture.begin(Category.KEYBOARD, "r1")
    _press(capture, clock, 4)
    capture.pump()
    _press(capture, clock, 2)
    assert capture.drop(Category.KEYBOARD) == 2
    clock.advance(20)
    assert capture.pump() == []
    assert not capture.is_open(Category.KEYBOARD)


def test_events_wait_for_the_focus_horizon_and_excluded_spans_are_dropped() -> None:
    capture, clock, focus, start = _typing_in_an_ide()
    clock.advance(0.1)
    _press(capture, clock, 2 * K)  # at +0.1: before the next poll confirms the focus
    clock.advance(0.15)
    capture.pump()
    assert len(capture.buffers[SourceKind.KEYBOARD]) == 2 * K  # held: the focus is not known yet
    poll = clock.monotonic()
    focus.put((start, poll, "cat:ide", False))  # poll at +0.25: still permitted
    clock.advance(0.1)
    _press(capture, clock, 5 * K)  # at +0.35: an excluded app got focus in (0.25, 0.5]
    clock.advance(0.15)
    focus.put((poll, clock.monotonic(), "anon:0123456789abcdef", True))
    capture.pump()
    assert capture.excluded
    clock.advance(1.0)
    _press(capture, clock, 7 * K)  # typed into the excluded app
    focus.put((clock.monotonic() - 1.0, clock.monotonic(), "anon:0123456789abcdef", True))
    capture.pump()
    clock.advance(0.25)
    back = clock.monotonic()
    focus.put((back - 0.25, back, "cat:ide", False))
    clock.advance(0.1)
    _press(capture, clock, 3 * K)
    focus.put((back, clock.monotonic(), "cat:ide", False))
    clock.advance(10)
    focus.put((back, clock.monotonic(), "cat:ide", False))
    records = capture.pump()
    assert not capture.excluded
    assert _letters(records) == 5 * K  # 2 before, 3 after; the 5 + 7 in the excluded span are gone


def test_a_new_window_length_loses_no_press_still_waiting_for_the_focus_horizon() -> None:
    """IT changes the window length while the employee types: a policy change is no change of consent."""
    capture, clock, focus, start = _typing_in_an_ide()
    clock.advance(0.1)
    _press(capture, clock, K)
    poll = clock.monotonic()
    focus.put((start, poll, "cat:ide", False))
    clock.advance(0.1)
    _press(capture, clock, 2 * K)  # after the last poll: held until the next one
    records = capture.resize(20)  # at T0 + 2.2
    assert [(r.start, r.end, r.receipt_id) for r in records if isinstance(r, KeyboardWindow)] == [
        (int(T0), int(T0) + 3, "r1")
    ]
    clock.advance(0.1)
    focus.put((poll, clock.monotonic(), "cat:ide", False))
    _press(capture, clock, K)
    clock.advance(20)
    focus.put((poll, clock.monotonic(), "cat:ide", False))
    records += capture.pump()
    keyboard = [r for r in records if isinstance(r, KeyboardWindow)]
    assert [(r.start, r.end, r.receipt_id) for r in keyboard] == [
        (int(T0), int(T0) + 3, "r1"),
        (int(T0) + 3, int(T0) + 20, "r1"),
    ]
    assert _letters(records) == 4 * K
    apps = [r for r in records if not isinstance(r, KeyboardWindow)]
    assert [(r.start, r.end, r.receipt_id) for r in apps] == [
        (int(T0), int(T0) + 3, "r2"),
        (int(T0) + 3, int(T0) + 20, "r2"),
    ]


def test_a_full_buffer_drops_the_newest_and_counts_it() -> None:
    buffer = EventBuffer(capacity=3)
    for i in range(5):
        buffer.put((float(i), KeyClass.LETTER))
    assert len(buffer) == 3 and buffer.dropped == 2
    assert [e[0] for e in buffer.take_until(10.0)] == [0.0, 1.0, 2.0]


def test_apps_focus_carries_into_the_next_window() -> None:
    capture, clock = _capture(wall=T0 + 5)
    capture.focus_started()
    now = clock.monotonic()
    capture.buffers[SourceKind.FOCUS].put((now, now, "cat:browser", False))
    capture.pump()
    capture.begin(Category.APPS, "r2")
    clock.advance(20)
    capture.buffers[SourceKind.FOCUS].put((now, clock.monotonic(), "cat:browser", False))
    records = capture.pump()
    assert [(r.start, r.end) for r in records] == [(int(T0), int(T0) + 10), (int(T0) + 10, int(T0) + 20)]
    assert [r.focus[0].seconds for r in records] == [5.0, 10.0]  # type: ignore[union-attr]


def test_capture_names_the_grant_of_an_open_window() -> None:
    capture, clock = _capture()
    assert capture.receipt_id(Category.KEYBOARD) is None
    capture.begin(Category.KEYBOARD, "r-1")
    assert capture.receipt_id(Category.KEYBOARD) == "r-1" and capture.is_open(Category.KEYBOARD)
    capture.drop(Category.KEYBOARD)
    assert capture.receipt_id(Category.KEYBOARD) is None


def test_only_the_capture_core_touches_its_pipelines() -> None:
    """The daemon asks ``Capture`` (``is_open``, ``receipt_id``); it never reaches into ``capture.pipelines``."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "agent"
    reaching = sorted(
        f"{path.relative_to(root)}:{node.lineno}"
        for path in root.rglob("*.py")
        if path.name != "capture.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "pipelines"
    )
    assert reaching == []
