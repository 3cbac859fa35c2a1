"""Key presses of one window -> KeyboardWindow: class counts, inter-key intervals, bursts, corrections.

Every statistic is computed inside the window: the interval between the last press of one window and
the first of the next is not counted, so a window's record depends on its own presses only.

A window with fewer than KEYBOARD_MIN_PRESSES presses is recorded as ``sparse``, every statistic
withheld: its length, class mix, rhythm and bursts would be those of a password typed alone in it.
"""

from __future__ import annotations

from bisect import bisect_right

from protocol.categories import KeyClass
from protocol.windows import (
    BURST_MIN_PRESSES,
    IKI_BIN_EDGES_MS,
    KEYBOARD_MIN_PRESSES,
    PAUSE_GAP_SECONDS,
    KeyboardWindow,
)

_CLASSES = tuple(KeyClass)


class KeyboardAccumulator:
    __slots__ = ("_last", "_run", "bursts", "counts", "histogram", "longest_burst", "pauses", "presses")

    def __init__(self) -> None:
        self.counts: dict[KeyClass, int] = dict.fromkeys(_CLASSES, 0)
        self.histogram = [0] * len(IKI_BIN_EDGES_MS)
        self.presses = 0
        self.bursts = 0
        self.longest_burst = 0
        self.pauses = 0
        self._last: float | None = None
        self._run = 0

    def add(self, event: tuple[float, KeyClass]) -> None:
        t, key_class = event
        self.counts[key_class] += 1
        self.presses += 1
        last = self._last
        if last is not None:
            gap = max(0.0, t - last)
            self.histogram[bisect_right(IKI_BIN_EDGES_MS, gap * 1000.0) - 1] += 1
            if gap >= PAUSE_GAP_SECONDS:
                self.pauses += 1
                self._end_run()
        self._run += 1
        self._last = t

    def _end_run(self) -> None:
        if self._run >= BURST_MIN_PRESSES:
            self.bursts += 1
            self.longest_burst = max(self.longest_burst, self._run)
        self._run = 0

    def finish(self, start: int, end: int, receipt_id: str, at: float | None = None) -> KeyboardWindow | None:
        """The window's record (sparse below KEYBOARD_MIN_PRESSES), or None when no key was pressed in it."""
        if self.presses == 0:
            return None
        if self.presses < KEYBOARD_MIN_PRESSES:
            return KeyboardWindow.sparse_window(start, end, receipt_id)
        self._end_run()
        return KeyboardWindow(
            start=start,
            end=end,
            receipt_id=receipt_id,
            key_counts=self.counts,
            iki_histogram=tuple(self.histogram),
            bursts=self.bursts,
            longest_burst=self.longest_burst,
            pauses=self.pauses,
            correction_ratio=self.counts[KeyClass.EDITING] / self.presses,
        )
