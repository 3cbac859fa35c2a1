"""Aggregation is pure: event tuples in, one window record out, computed exactly as documented."""

from __future__ import annotations

import pytest

from agent.aggregate import AppsAccumulator, FilesAccumulator, KeyboardAccumulator, MouseAccumulator
from agent.aggregate.timeline import cut_end, window_end, window_start
from agent.events import CLICK, MOVE, SCROLL
from protocol.categories import FileEventKind, KeyClass, MouseButton, RootClass
from protocol.windows import IKI_BIN_EDGES_MS

L, E, S = KeyClass.LETTER, KeyClass.EDITING, KeyClass.SPACE


def _keys(*events: tuple[float, KeyClass]) -> KeyboardAccumulator:
    acc = KeyboardAccumulator()
    for event in events:
        acc.add(event)
    return acc


def test_windows_align_to_the_utc_clock() -> None:
    assert window_start(1_700_000_007.9, 10) == 1_700_000_000
    assert window_end(1_700_000_007.9, 60) == 1_700_000_040
    assert window_start(1_700_000_020.0, 10) == 1_700_000_020
    assert cut_end(100, 104.2) == 105
    assert cut_end(100, 100.0) == 101  # a record is never empty in time
    with pytest.raises(ValueError):
        window_start(5.0, 0)


def test_keyboard_counts_classes_and_bins_intervals_by_the_shared_edges() -> None:
    acc = _keys((0.0, L), (0.040, L), (0.140, S), (0.440, E), (2.440, L), (5.0, L))
    record = acc.finish(0, 10, "r1")
    assert record is not None
    assert record.key_counts[L] == 4 and record.key_counts[E] == 1 and record.key_counts[S] == 1
    assert record.key_counts[KeyClass.DIGIT] == 0
    # intervals 40, 100, 300, 2000, 2560 ms
    expected = [0] * len(IKI_BIN_EDGES_MS)
    for ms in (40, 100, 300, 2000, 2560):
        expected[max(i for i, edge in enumerate(IKI_BIN_EDGES_MS) if edge <= ms)] += 1
    assert list(record.iki_histogram) == expected
    assert record.pauses == 2  # two gaps of at least PAUSE_GAP_SECONDS
    assert record.bursts == 1 and record.longest_burst == 4  # the first four presses; then runs of 1
    assert record.correction_ratio == pytest.approx(1 / 6)


def test_keyboard_window_without_presses_is_not_written() -> None:
    assert KeyboardAccumulator().finish(0, 10, "r1") is None


def test_mouse_sums_distance_clicks_scroll_and_idle_gaps() -> None:
    acc = MouseAccumulator(start=100.0)
    acc.add((100.5, MOVE, 0, 0))
    acc.add((100.6, MOVE, 3, 4))
    acc.add((100.7, CLICK, MouseButton.LEFT, 0))
    acc.add((104.0, SCROLL, 3, 0))  # 3.3 s after the click: idle
    acc.add((104.1, CLICK, MouseButton.RIGHT, 0))
    record = acc.finish(100, 110, "r1")
    assert record is not None
    assert record.moves == 2 and record.distance_px == 5.0
    assert record.clicks[MouseButton.LEFT] == 1 and record.clicks[MouseButton.RIGHT] == 1
    assert record.scroll_steps == 3
    assert record.idle_seconds == pytest.approx(3.3 + 5.9)  # the gap, and the window's quiet tail


def test_apps_credits_focus_seconds_counts_switches_and_ignores_excluded_time() -> None:
    acc = AppsAccumulator(start=0.0, current="cat:ide")
    acc.add((1.9, 2.0, "cat:browser", False))
    acc.add((4.9, 5.0, "anon:0123456789abcdef", True))  # excluded: nobody is credited
    acc.add((6.9, 7.0, "cat:ide", False))
    record = acc.finish(0, 10, "r1")
    assert record is not None
    assert {f.app: f.seconds for f in record.focus} == {"cat:ide": 5.0, "cat:browser": 3.0}
    assert record.switches == 2
    assert acc.current == "cat:ide"


def test_apps_window_with_nothing_focused_is_not_written() -> None:
    assert AppsAccumulator(start=0.0, current=None).finish(0, 10, "r1") is None


def test_files_counts_group_by_root_depth_ext_and_kind() -> None:
    acc = FilesAccumulator()
    for _ in range(3):
        acc.add((1.0, RootClass.PROJECTS, 2, "py", FileEventKind.MODIFIED))
    acc.add((2.0, RootClass.DOCUMENTS, 0, None, FileEventKind.CREATED))
    record = acc.finish(0, 10, "r1")
    assert record is not None
    assert {(e.root_class, e.depth, e.ext, e.kind, e.count) for e in record.events} == {
        (RootClass.PROJECTS, 2, "py", FileEventKind.MODIFIED, 3),
        (RootClass.DOCUMENTS, 0, None, FileEventKind.CREATED, 1),
    }
    assert FilesAccumulator().finish(0, 10, "r1") is None
