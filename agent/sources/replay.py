"""The replay source: feeds a recorded or synthetic stream through the same sink as a live source.

Events are stamped with the monotonic instant they were due, as a live callback would stamp them.
Events due within ``BATCH_SECONDS`` of each other are delivered together, so replaying 1,000 pointer
moves a second wakes the thread about a hundred times a second, not a thousand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from agent.app_tokens import AppResolver
from agent.events import EventSink
from agent.sources.base import SourceKind, ThreadedSource
from agent.sources.replay_stream import StreamItem

BATCH_SECONDS = 0.01
FOCUS_HEARTBEAT_SECONDS = 0.25


class ReplaySource(ThreadedSource):
    def __init__(
        self,
        kind: SourceKind,
        items: Callable[[], Iterable[StreamItem]],
        *,
        resolver: Callable[[], AppResolver] | None = None,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError("replay speed must be positive")
        if kind is SourceKind.FOCUS and resolver is None:
            raise ValueError("a focus replay needs an application resolver")
        self._kind = kind
        self._items = items
        self._resolver = resolver
        self._speed = speed
        self._monotonic = monotonic

    def start(self, sink: EventSink) -> None:
        self._check_not_started()
        base = self._monotonic()
        iterator: Iterator[StreamItem] = iter(self._items())
        if self._kind is SourceKind.FOCUS:
            # Like the live focus source: the first sample is in before start returns.
            first = next(iterator, None)
            self._focus = self._resolve("" if first is None else first[1][0])
            sink.put((base, self._monotonic(), *self._focus))
            if first is not None and first[0] > 0:
                iterator = _chain_first(first, iterator)
        self._run_thread(self._run, (iterator, sink, base), f"consentry-replay-{self._kind.value}")

    def _resolve(self, app: str) -> tuple[str | None, bool]:
        assert self._resolver is not None
        resolved = self._resolver().resolve(app)
        return (resolved.token, resolved.excluded)

    def _run(self, items: Iterable[StreamItem], sink: EventSink, base: float) -> None:
        put = sink.put
        focus = self._kind is SourceKind.FOCUS
        last = base
        for offset, payload in items:
            due = base + offset / self._speed
            while True:
                now = self._monotonic()
                if due <= now + BATCH_SECONDS:
                    break
                wait = due - now
                if focus:
                    wait = min(wait, FOCUS_HEARTBEAT_SECONDS)
                if self._stop.wait(wait):
                    return
                if focus:
                    last = self._heartbeat(sink, last)
            if focus:
                self._focus = self._resolve(payload[0])
                put((last, due, *self._focus))
                last = due
            else:
                put((due, *payload))
        # A finished stream: the focus stays where it was until the source is stopped.
        while focus and not self._stop.wait(FOCUS_HEARTBEAT_SECONDS):
            last = self._heartbeat(sink, last)

    def _heartbeat(self, sink: EventSink, last: float) -> float:
        now = self._monotonic()
        sink.put((last, now, *self._focus))
        return now


def _chain_first(first: StreamItem, rest: Iterable[StreamItem]) -> Iterator[StreamItem]:
    yield first
    yield from rest
