"""The tiny tuples sources hand to the pipeline, and the bounded buffer they go into.

Every tuple starts with ``time.monotonic()`` taken in the callback. None of them can hold a
character, keycode, window title or path: sources minimise before they ``put``.

    keyboard  (t, KeyClass)                                  one per key press (releases are ignored)
    mouse     (t, MOVE, x, y) | (t, CLICK, MouseButton, 0) | (t, SCROLL, steps, 0)
    focus     (t_lo, t_hi, app_token | None, excluded)       the focus changed somewhere in (t_lo, t_hi]
    files     (t, RootClass, depth, ext | None, FileEventKind)
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

MOVE = 0
CLICK = 1
SCROLL = 2

DEFAULT_CAPACITY = 100_000


class EventSink(Protocol):
    """Where a source delivers events, and how it says it can no longer capture."""

    def put(self, event: tuple[Any, ...]) -> None: ...

    def unavailable(self, reason: str) -> None: ...


class EventBuffer:
    """A bounded FIFO between a source's thread and the agent's loop; never blocks the producer.

    When full, the newest event is dropped and counted: the consumer is stalled, and keeping the
    older, contiguous part of the stream gives truer windows than a stream with a hole in its middle.
    ``deque.append``/``popleft`` are atomic in CPython, so one producer and one consumer need no lock.
    """

    __slots__ = ("_capacity", "_events", "dropped", "problem")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._events: deque[tuple[Any, ...]] = deque()
        self._capacity = capacity
        self.dropped = 0
        self.problem: str | None = None

    def put(self, event: tuple[Any, ...]) -> None:
        if len(self._events) < self._capacity:
            self._events.append(event)
        else:
            self.dropped += 1

    def unavailable(self, reason: str) -> None:
        self.problem = reason

    def __len__(self) -> int:
        return len(self._events)

    def take_until(self, horizon: float) -> list[tuple[Any, ...]]:
        """Remove and return the events stamped at or before ``horizon`` (in arrival order)."""
        events = self._events
        out: list[tuple[Any, ...]] = []
        while events and events[0][0] <= horizon:
            out.append(events.popleft())
        return out

    def clear(self) -> int:
        """Forget every buffered event (consent ended); returns how many were dropped."""
        count = len(self._events)
        self._events.clear()
        return count
