"""Time as the agent sees it: a monotonic clock for event order and a wall clock for windows."""

from __future__ import annotations

import time
from typing import Protocol


class CaptureClock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemCaptureClock:
    """The real clocks. Input callbacks use ``time.monotonic`` directly, which is what this returns."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to: replayed streams and tests run in virtual time."""

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self._offset = wall - mono
        self._mono = mono

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._mono + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._mono += seconds
