"""One category's open window: events in (monotonic time), finished records out (UTC wall seconds).

Windows are aligned to the UTC wall clock; each carries the receipt of the grant under which it was
opened. The wall/monotonic offset is fixed when a window opens, so a wall-clock step moves the next
window, never the events already in this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.aggregate import Accumulator, new_accumulator
from agent.aggregate.apps import AppsAccumulator
from agent.aggregate.timeline import cut_end, window_start
from protocol.categories import Category
from protocol.windows import AnyWindow


@dataclass
class OpenWindow:
    start: int  # record start, UTC epoch seconds
    end: int  # aligned end
    offset: float  # wall - monotonic when opened
    receipt_id: str
    acc: Accumulator

    @property
    def end_mono(self) -> float:
        return self.end - self.offset


class CategoryPipeline:
    __slots__ = ("_last_end", "category", "size", "window")

    def __init__(self, category: Category, window_seconds: int) -> None:
        self.category = category
        self.size = window_seconds
        self.window: OpenWindow | None = None
        self._last_end = 0  # records of one category never overlap

    @property
    def receipt_id(self) -> str | None:
        return None if self.window is None else self.window.receipt_id

    def begin(self, receipt_id: str, mono: float, wall: float, focused: str | None = None) -> None:
        """Open a window at this instant (capture starts or resumes); ``focused``: apps only."""
        self.window = self._open(receipt_id, mono, wall, focused)

    def _open(self, receipt_id: str, mono: float, wall: float, focused: str | None) -> OpenWindow:
        start = max(window_start(wall, self.size), self._last_end)
        end = window_start(wall, self.size) + self.size
        if start >= end:  # only after a cut that ended in the next second
            start, end = end, end + self.size
        return OpenWindow(start, end, wall - mono, receipt_id, new_accumulator(self.category, mono, focused))

    def feed(self, events: list[tuple[Any, ...]], horizon: float, wall_offset: float) -> list[AnyWindow]:
        """Add events (time-ordered, all at or before ``horizon``); return the windows that closed.

        A window closes once ``horizon`` (the time up to which every source's events are in)
        passes its end, so a closed window can no longer receive a late event.
        """
        window = self.window
        if window is None:
            return []
        records: list[AnyWindow] = []
        end_mono = window.end_mono
        add = window.acc.add
        for event in events:
            while event[0] >= end_mono:
                window = self._roll(window, event[0], wall_offset, records)
                end_mono = window.end_mono
                add = window.acc.add
            add(event)
        while horizon >= window.end_mono:
            window = self._roll(window, horizon, wall_offset, records)
        return records

    def _roll(self, window: OpenWindow, mono: float, wall_offset: float, records: list[AnyWindow]) -> OpenWindow:
        """Close ``window`` at its end and open the next one.

        Windows in which nothing can happen are skipped up to the one holding ``mono``; an apps
        window with a focused application is not empty, so apps windows stay contiguous.
        """
        record = window.acc.finish(window.start, window.end, window.receipt_id, window.end_mono)
        self._last_end = window.end
        if record is not None:
            records.append(record)
        focused = window.acc.current if isinstance(window.acc, AppsAccumulator) else None
        wall = float(window.end) if focused is not None else max(mono + wall_offset, float(window.end))
        start = window_start(wall, self.size)
        acc_start = start - wall_offset if start > window.end else window.end_mono
        # The new window's accumulator starts where it starts in monotonic time.
        self.window = OpenWindow(
            start,
            start + self.size,
            wall_offset,
            window.receipt_id,
            new_accumulator(self.category, acc_start, focused),
        )
        return self.window

    def cut(self, mono: float) -> AnyWindow | None:
        """Close the open window at this instant (pause, exclusion, shutdown); keep what it holds."""
        window = self.window
        self.window = None
        if window is None:
            return None
        at = min(mono, window.end_mono)
        end = min(cut_end(window.start, at + window.offset), window.end)
        self._last_end = end
        return window.acc.finish(window.start, end, window.receipt_id, at)

    def drop(self) -> None:
        """Forget the open window unwritten (consent ended)."""
        self.window = None
