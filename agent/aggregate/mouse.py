"""Mouse events of one window -> MouseWindow: clicks per button, scroll steps, moves, distance, idle."""

from __future__ import annotations

import math
from typing import Any

from agent.events import CLICK, MOVE, SCROLL
from protocol.categories import MouseButton
from protocol.windows import MOUSE_IDLE_GAP_SECONDS, MouseWindow

_BUTTONS = tuple(MouseButton)


class MouseAccumulator:
    """Idle time is the sum of the gaps longer than MOUSE_IDLE_GAP_SECONDS between the window's
    start, its events and its end. Distance is measured between consecutive pointer positions of
    this window (the first move of a window has no predecessor)."""

    __slots__ = ("_last_t", "_pos", "_start", "clicks", "distance", "events", "idle", "moves", "scroll_steps")

    def __init__(self, start: float) -> None:
        self.clicks: dict[MouseButton, int] = dict.fromkeys(_BUTTONS, 0)
        self.scroll_steps = 0
        self.moves = 0
        self.distance = 0.0
        self.idle = 0.0
        self.events = 0
        self._start = start
        self._last_t = start
        self._pos: tuple[Any, Any] | None = None

    def add(self, event: tuple[float, int, Any, Any]) -> None:
        t, kind, a, b = event
        gap = t - self._last_t
        if gap > MOUSE_IDLE_GAP_SECONDS:
            self.idle += gap
        self._last_t = max(self._last_t, t)
        self.events += 1
        if kind == MOVE:
            self.moves += 1
            pos = self._pos
            if pos is not None:
                self.distance += math.hypot(a - pos[0], b - pos[1])
            self._pos = (a, b)
        elif kind == CLICK:
            self.clicks[a] += 1
        elif kind == SCROLL:
            self.scroll_steps += a

    def finish(self, start: int, end: int, receipt_id: str, at: float | None = None) -> MouseWindow | None:
        """The record for the window, closed at ``at`` (default ``end``); None without any event."""
        if self.events == 0:
            return None
        tail = (end if at is None else at) - self._last_t
        idle = self.idle + (tail if tail > MOUSE_IDLE_GAP_SECONDS else 0.0)
        return MouseWindow(
            start=start,
            end=end,
            receipt_id=receipt_id,
            clicks=self.clicks,
            scroll_steps=self.scroll_steps,
            moves=self.moves,
            distance_px=round(self.distance, 1),
            idle_seconds=round(min(idle, float(end - start)), 3),
        )
