"""Pacing new connections: a few start being read per event-loop turn; the rest wait unread, in arrival order.

Why (measured with ``benchmarks/bench_store_hostile.py --attacks parallel`` and a loop-turn trace): every
connection the store reads costs event-loop time (its head parsed, the gate, an answer), and every
connection that became readable in one turn is handled in that turn before anything else. Hundreds of
new connections at once made single turns last 30-110 ms, and ``/v1/health``, which needs a few turns,
waited behind several of them. Paced, one turn starts at most ``per_turn`` new connections; the others
stay paused (their bytes wait in the kernel's socket buffer and cost the store nothing) and are started
in the following turns, oldest first.

Only a connection's *first* request is paced: one that got a response and was kept alive is read at
once, so an honest agent's next request goes ahead of a flood. The gate closes every connection it
refuses, so a flooding sender comes back as a new, paced connection.

Nothing is dropped: a waiting connection keeps its place until it is read. The connection cap still
counts it, and its request-head timeout starts only when the store starts reading it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable

log = logging.getLogger("store.connections")

WARN_EVERY_SECONDS = 60.0  # a sustained flood says so once a minute, not once a burst


class Admission:
    """One per server (one event loop): decides when each new connection starts being read.

    ``arrive(loop, start)`` is called when a connection opens. True: read it now. False: the caller
    pauses it, and ``start()`` is called in a later turn, in arrival order; ``start`` returns False
    when the connection closed meanwhile (it then takes no place in that turn).
    """

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self._started = 0  # new connections started since the last turn began
        self._waiting: deque[Callable[[], bool]] = deque()
        self._turn_scheduled = False
        self._burst = 0  # connections that waited since the last warning
        self._burst_began = 0.0
        self._last_warning = -math.inf

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def arrive(self, loop: asyncio.AbstractEventLoop, start: Callable[[], bool]) -> bool:
        self._schedule(loop)
        if self._started < self.per_turn and not self._waiting:
            self._started += 1
            return True
        if not self._waiting and not self._burst:
            self._burst_began = loop.time()
        self._waiting.append(start)
        self._burst += 1
        return False

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn, loop)  # runs once in the next turn: a fresh budget

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        self._turn_scheduled = False
        self._started = 0
        while self._waiting and self._started < self.per_turn:
            if self._waiting.popleft()():
                self._started += 1
        if self._waiting:
            self._schedule(loop)
        elif self._burst:
            self._warn(loop.time())

    def _warn(self, now: float) -> None:
        if now - self._last_warning < WARN_EVERY_SECONDS:
            return  # counted into the next warning
        log.warning(
            "%d new connections waited, unread, before the store started reading them (%d per event-loop turn); "
            "the last burst took %.0f ms to start. Each was then served in arrival order. If this repeats, "
            "rate-limit new connections in the reverse proxy (docs/store.md).",
            self._burst,
            self.per_turn,
            (now - self._burst_began) * 1000,
        )
        self._last_warning = now
        self._burst = 0
