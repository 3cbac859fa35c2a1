"""The one shape every per-category accumulator has, and the function that makes the right one."""

from __future__ import annotations

from typing import Any, Protocol

from agent.aggregate.apps import AppsAccumulator
from agent.aggregate.files import FilesAccumulator
from agent.aggregate.keyboard import KeyboardAccumulator
from agent.aggregate.mouse import MouseAccumulator
from protocol.categories import Category
from protocol.windows import AnyWindow


class Accumulator(Protocol):
    def add(self, event: Any) -> None: ...

    def finish(self, start: int, end: int, receipt_id: str, at: float | None = None) -> AnyWindow | None:
        """The window's record (closed at ``at``, default ``end``), or None when nothing happened."""
        ...


def new_accumulator(category: Category, start: float, focused: str | None = None) -> Accumulator:
    """A fresh accumulator for a window of ``category`` opening at ``start`` (monotonic seconds, as its events).

    ``focused`` is the application token focused when an apps window opens (apps only).
    """
    if category is Category.KEYBOARD:
        return KeyboardAccumulator()
    if category is Category.MOUSE:
        return MouseAccumulator(start)
    if category is Category.APPS:
        return AppsAccumulator(start, focused)
    return FilesAccumulator()
