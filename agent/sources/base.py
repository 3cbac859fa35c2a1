"""The one protocol every capture source implements, the kinds of source there are, and the thread
bookkeeping the sources share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from agent.events import EventSink
from protocol.categories import Category

log = logging.getLogger("consentry.agent")


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


STOP_JOIN_SECONDS = 2.0


class ThreadedSource:
    """A source whose capture runs on one thread of its own: its poll or replay loop, a watchdog
    observer or a pynput listener. It starts once; ``stop`` is idempotent and waits for the thread.

    Loops started with ``_run_thread`` end when ``self._stop`` is set; a source that starts some other
    thread stores it in ``self._worker`` and overrides ``_halt`` to tell it to end.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def _check_not_started(self) -> None:
        if self._worker is not None:
            raise RuntimeError("source already started")

    def _run_thread(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        self._stop.clear()
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._worker = thread

    def _halt(self, worker: threading.Thread) -> None:
        self._stop.set()

    def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            self._halt(worker)
            worker.join(timeout=STOP_JOIN_SECONDS)
            if worker.is_alive():  # it may still deliver events, and every stop now waits for it
                log.warning("a capture thread did not stop within %g s (%s)", STOP_JOIN_SECONDS, type(self).__name__)
