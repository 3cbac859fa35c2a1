"""The focused-application source: polls a platform backend ~4 times a second.

Each poll emits ``(t_lo, t_hi, token, excluded)``: the focus was this since some moment in
``(t_lo, t_hi]``. Emitting every poll (not only changes) tells the pipeline up to when the focus is
known, so it can hold back input events until it knows whether an excluded application had focus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent.app_tokens import AppResolver
from agent.errors import SourceUnavailable
from agent.events import EventSink
from agent.sources.base import ThreadedSource

log = logging.getLogger("consentry.agent")

POLL_SECONDS = 0.25


class FocusBackend(Protocol):
    """One operating system's answer to "which application has focus?"."""

    def focused_names(self) -> tuple[str | None, ...]:
        """The focused application's names, most specific first; () when none has focus.

        Raises ``SourceUnavailable`` when the session is gone.
        """
        ...

    def close(self) -> None: ...


class FocusSource(ThreadedSource):
    def __init__(
        self,
        open_backend: Callable[[], FocusBackend],
        resolver: Callable[[], AppResolver],
        *,
        poll_seconds: float = POLL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._open_backend = open_backend
        self._resolver = resolver  # read on every poll, so a changed policy applies at once
        self._poll = poll_seconds
        self._monotonic = monotonic

    def start(self, sink: EventSink) -> None:
        self._check_not_started()
        backend = self._open_backend()  # raises SourceUnavailable
        t0 = self._monotonic()
        try:
            first = self._resolver().resolve(*backend.focused_names())
        except SourceUnavailable:
            backend.close()
            raise
        # The first sample is delivered before start returns: input sources started after this
        # one are covered from their first event on.
        sink.put((t0, self._monotonic(), first.token, first.excluded))
        self._run_thread(self._run, (backend, sink), "consentry-focus")

    def _run(self, backend: FocusBackend, sink: EventSink) -> None:
        previous = self._monotonic()
        try:
            while not self._stop.wait(self._poll):
                try:
                    names = backend.focused_names()
                except SourceUnavailable as exc:
                    sink.unavailable(str(exc))
                    return
                resolved = self._resolver().resolve(*names)
                now = self._monotonic()
                sink.put((previous, now, resolved.token, resolved.excluded))
                previous = now
        finally:
            backend.close()
