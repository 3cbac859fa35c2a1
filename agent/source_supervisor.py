"""The running capture sources: started and stopped on the agent's word, retried with backoff.

The agent decides which kinds of source should run (through the consent gate); the supervisor makes
it so. A source that cannot start, or that reports later that it lost its session, is stopped and
its reason kept for status; while it is still wanted it is retried after 2 s, 4 s, ... up to 60 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.capture import Capture
from agent.errors import SourceUnavailable
from agent.sources import Source, SourceContext, SourceKind, make_source

log = logging.getLogger("consentry.agent")

FIRST_SOURCE_RETRY = 2.0
MAX_SOURCE_RETRY = 60.0


class SourceSupervisor:
    def __init__(
        self,
        capture: Capture,
        context: Callable[[], SourceContext],
        monotonic: Callable[[], float],
    ) -> None:
        self._capture = capture
        self._context = context  # built when a source starts, so it sees the latest folders and policy
        self._monotonic = monotonic
        self.sources: dict[SourceKind, Source] = {}
        self.problems: dict[SourceKind, str] = {}  # why a kind cannot run, for status
        self._retry_at: dict[SourceKind, float] = {}
        self._backoff: dict[SourceKind, float] = {}

    def want(self, kind: SourceKind, running: bool) -> None:
        """Have ``kind`` running (unless it failed and its retry is not due yet) or stopped."""
        if not running:
            self.stop(kind)
            self.problems.pop(kind, None)
            return
        if kind in self.sources:
            return
        if kind in self.problems and self._monotonic() < self._retry_at.get(kind, 0.0):
            return
        source = make_source(kind, self._context())
        if kind is SourceKind.FOCUS:
            self._capture.focus_started()
        try:
            source.start(self._capture.buffers[kind])
        except SourceUnavailable as exc:
            self._failed(kind, str(exc))
            return
        except Exception as exc:  # a backend bug must not take the agent down; its type is enough to log
            log.error("%s source failed to start: %s", kind.value, type(exc).__name__)
            self._failed(kind, f"the {kind.value} source failed to start ({type(exc).__name__})")
            return
        if kind in self.problems:
            log.info("%s source available again", kind.value)
        self.problems.pop(kind, None)
        self._backoff.pop(kind, None)
        self.sources[kind] = source

    def restart(self, kind: SourceKind) -> None:
        """Stop ``kind`` and forget its failure: the next ``want`` starts it afresh."""
        self.stop(kind)
        self.problems.pop(kind, None)
        self._retry_at.pop(kind, None)

    def stop(self, kind: SourceKind) -> None:
        source = self.sources.pop(kind, None)
        if source is not None:
            source.stop()
            if kind is SourceKind.FOCUS:
                self._capture.focus_stopped()

    def stop_all(self) -> None:
        for kind in list(self.sources):
            self.stop(kind)

    def collect_problems(self) -> None:
        """Stop every source that reported from its thread that it can no longer capture."""
        for kind in list(self.sources):
            buffer = self._capture.buffers[kind]
            if buffer.problem is not None:
                reason, buffer.problem = buffer.problem, None
                self.stop(kind)
                self._failed(kind, reason)

    def _failed(self, kind: SourceKind, reason: str) -> None:
        if kind is SourceKind.FOCUS:
            self._capture.focus_stopped()
        if self.problems.get(kind) != reason:
            log.warning("%s source unavailable: %s", kind.value, reason)
        self.problems[kind] = reason
        backoff = self._backoff.get(kind, FIRST_SOURCE_RETRY)
        self._retry_at[kind] = self._monotonic() + backoff
        self._backoff[kind] = min(MAX_SOURCE_RETRY, backoff * 2)
