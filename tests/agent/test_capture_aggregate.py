"""Aggregation is pure: event tuples in, one window record out, computed exactly as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.aggregate import AppsAccumulator, FilesAccumulator, KeyboardAccumulator, MouseAccumulator
from agent.aggregate.timeline import cut_end, window_end, window_start
from agent.events import CLICK, MOVE, SCROLL
from protocol.categories import FileEventKind, KeyClass, MouseButton, RootClass
from protocol.windows import IKI_BIN_EDGES_MS, KEYBOARD_MIN_PRESSES, KeyboardWindow

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
    # 26 quick letters after the six make the window reach the minimum (32), so nothing is withheld.
    tail = [(5.0 + 0.04 * (i + 1), L) for i in range(26)]
    acc = _keys((0.0, L), (0.040, L), (0.140, S), (0.440, E), (2.440, L), (5.0, L), *tail)
    record = acc.finish(0, 10, "r1")
    assert record is not None and not record.sparse
    assert record.key_counts[L] == 30 and record.key_counts[E] == 1 and record.key_counts[S] == 1
    assert record.key_counts[KeyClass.DIGIT] == 0
    # intervals 40, 100, 300, 2000, 2560 ms, then 26 of 40 ms
    expected = [0] * len(IKI_BIN_EDGES_MS)
    for ms in (40, 100, 300, 2000, 2560, *[40] * 26):
        expected[max(i for i, edge in enumerate(IKI_BIN_EDGES_MS) if edge <= ms)] += 1
    assert list(record.iki_histogram) == expected
    assert record.pauses == 2  # two gaps of at least PAUSE_GAP_SECONDS
    assert record.bursts == 2 and record.longest_burst == 27  # the first four presses; a run of 1; the last 27
    assert record.correction_ratio == pytest.approx(1 / 32)


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


def _typed(text: str, start: float = 0.0, gap: float = 0.12) -> KeyboardAccumulator:
    """Presses as a person types ``text``: a class per character, ``gap`` seconds apart."""
    events = []
    for i, char in enumerate(text):
        if char.isalpha():
            key_class = L
        elif char.isdigit():
            key_class = KeyClass.DIGIT
        elif char == " ":
            key_class = S
        else:
            key_class = KeyClass.PUNCTUATION
        events.append((start + i * gap, key_class))
    return _keys(*events)


def test_a_window_holding_only_a_password_keeps_neither_its_length_nor_its_shape() -> None:
    record = _typed("Tr0ub4dor&3x").finish(0, 60, "r1")  # 8 letters, 3 digits, 1 punctuation
    assert record is not None and record.sparse  # keyboard was used in this window, nothing more
    assert set(record.key_counts.values()) == {0}
    assert set(record.iki_histogram) == {0}
    assert (record.bursts, record.longest_burst, record.pauses, record.correction_ratio) == (0, 0, 0, 0.0)


@pytest.mark.parametrize("presses", [1, 12, KEYBOARD_MIN_PRESSES - 1])
def test_every_window_below_the_minimum_is_withheld_whatever_its_length(presses: int) -> None:
    sparse = _typed("a" * presses).finish(0, 60, "r1")
    assert sparse is not None and sparse.sparse and sum(sparse.key_counts.values()) == 0
    assert sparse.model_dump(exclude={"start", "end", "receipt_id", "sparse"}) == _typed("b").finish(
        0, 60, "r1"
    ).model_dump(exclude={"start", "end", "receipt_id", "sparse"})  # type: ignore[union-attr]


def test_a_window_at_the_minimum_keeps_every_statistic() -> None:
    record = _typed("x" * KEYBOARD_MIN_PRESSES).finish(0, 60, "r1")
    assert record is not None and not record.sparse
    assert record.key_counts[L] == KEYBOARD_MIN_PRESSES
    assert sum(record.iki_histogram) == KEYBOARD_MIN_PRESSES - 1
    assert record.bursts == 1 and record.longest_burst == KEYBOARD_MIN_PRESSES


def test_the_minimum_is_longer_than_a_typical_login() -> None:
    # user name, Tab, a 16-character password with two shifted characters, Enter
    login = 8 + 1 + 16 + 2 + 1
    assert KEYBOARD_MIN_PRESSES > login


def test_a_sparse_record_cannot_carry_counts() -> None:
    with pytest.raises(ValidationError, match="sparse"):
        KeyboardWindow(
            start=0,
            end=60,
            receipt_id="r1",
            sparse=True,
            key_counts={"letter": 8, "digit": 3, "punctuation": 1},
            iki_histogram=(0,) * len(IKI_BIN_EDGES_MS),
            bursts=0,
            longest_burst=0,
            pauses=0,
            correction_ratio=0.0,
        )
