"""The one protocol every capture source implements, and the kinds of source there are."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from agent.events import EventSink
from protocol.categories import Category


class SourceKind(StrEnum):
    KEYBOARD = "keyboard"
    MOUSE = "mouse"
    FOCUS = "focus"  # the focused application: the apps category, and exclusions for every category
    FILES = "files"


SOURCE_FOR_CATEGORY: dict[Category, SourceKind] = {
    Category.KEYBOARD: SourceKind.KEYBOARD,
    Category.MOUSE: SourceKind.MOUSE,
    Category.APPS: SourceKind.FOCUS,
    Category.FILES: SourceKind.FILES,
}


class Source(Protocol):
    """Delivers minimised event tuples (see ``agent.events``) to a sink from its own thread.

    ``start`` raises ``SourceUnavailable`` (with a reason for the employee) when it cannot capture
    here; a source that fails later calls ``sink.unavailable(reason)``. ``stop`` is idempotent and
    returns once no more events will be delivered.
    """

    def start(self, sink: EventSink) -> None: ...

    def stop(self) -> None: ...
