"""The capture core: source buffers -> exclusion filter -> per-category windows -> finished records.

Input events are held in their buffers until the focus source has reported up to their time (the
"horizon"), because until then nobody knows whether an excluded application had focus when they
happened. Exclusion is conservative: it starts at the last poll that still saw a permitted
application and ends at the first poll that sees one again.
"""

from __future__ import annotations

from typing import Any

from agent.clock import CaptureClock
from agent.events import DEFAULT_CAPACITY, EventBuffer
from agent.pipeline import CategoryPipeline
from agent.sources.base import SOURCE_FOR_CATEGORY, SourceKind
from protocol.categories import ALL_CATEGORIES, Category
from protocol.windows import AnyWindow

_INPUT_CATEGORIES = (Category.KEYBOARD, Category.MOUSE, Category.FILES)


class Capture:
    def __init__(self, window_seconds: int, clock: CaptureClock, capacity: int = DEFAULT_CAPACITY) -> None:
        self.clock = clock
        self.buffers = {kind: EventBuffer(capacity) for kind in SourceKind}
        self.pipelines = {c: CategoryPipeline(c, window_seconds) for c in ALL_CATEGORIES}
        self._focus_active = False
        self._focus_horizon = 0.0
        self._focus: tuple[str | None, bool] | None = None  # (token, excluded) last reported
        self._excluded_since: float | None = None
        self._intervals: list[tuple[float, float]] = []  # closed exclusion spans not yet applied

    # -- state the agent reads -------------------------------------------------------------------

    @property
    def excluded(self) -> bool:
        """An excluded application has focus (as of the last focus sample)."""
        return self._excluded_since is not None

    def is_open(self, category: Category) -> bool:
        return self.pipelines[category].window is not None

    def receipt_id(self, category: Category) -> str | None:
        """The grant the open window of ``category`` is captured under; None when none is open."""
        return self.pipelines[category].receipt_id

    @property
    def dropped(self) -> int:
        return sum(b.dropped for b in self.buffers.values())

    # -- focus source lifecycle --------------------------------------------------------------------

    def focus_started(self) -> None:
        """A focus source now feeds the focus buffer: hold input events until it reports."""
        self._focus_active = True
        self._focus_horizon = self.clock.monotonic()

    def focus_stopped(self) -> None:
        """No focus source any more: release held events; an open exclusion ends now."""
        now = self.clock.monotonic()
        self._apply_focus(self.buffers[SourceKind.FOCUS].take_until(now))
        if self._excluded_since is not None:
            self._intervals.append((self._excluded_since, now))
            self._excluded_since = None
        self._focus_active = False
        self._focus = None
        self.buffers[SourceKind.FOCUS].clear()

    # -- windows -----------------------------------------------------------------------------------

    def begin(self, category: Category, receipt_id: str) -> None:
        """Capture for ``category`` starts now, under this grant."""
        if category is not Category.APPS:
            self.buffers[SOURCE_FOR_CATEGORY[category]].clear()  # nothing from before the grant
        self.pipelines[category].begin(receipt_id, self.clock.monotonic(), self.clock.time(), self._focused(category))

    def _focused(self, category: Category) -> str | None:
        """The application an apps window opening now starts with (None while an excluded one has focus)."""
        if category is not Category.APPS or self._focus is None or self._focus[1]:
            return None
        return self._focus[0]

    def cut(self, category: Category) -> list[AnyWindow]:
        """Capture for ``category`` stops now, keeping what was captured (pause, storage error, shutdown)."""
        records = self.pump()
        record = self.pipelines[category].cut(self.clock.monotonic())
        if category is not Category.APPS:
            self.buffers[SOURCE_FOR_CATEGORY[category]].clear()
        return records + ([record] if record is not None else [])

    def drop(self, category: Category) -> int:
        """Capture for ``category`` ends, keeping nothing unwritten (consent ended); returns events dropped."""
        self.pipelines[category].drop()
        if category is Category.APPS:
            return 0  # the focus buffer also serves exclusions; apps data lives only in the window
        return self.buffers[SOURCE_FOR_CATEGORY[category]].clear()

    def resize(self, seconds: int) -> list[AnyWindow]:
        """Windows are ``seconds`` long from now on; returns the windows this cut.

        Each open window is cut now and the next opens at once under the same grant. Unlike a cut for
        a pause, no buffered event is dropped: those still waiting for the focus horizon count in the
        next window (a policy change is no change of consent).
        """
        records = self.pump()
        now, wall = self.clock.monotonic(), self.clock.time()
        for pipeline in self.pipelines.values():
            receipt_id = pipeline.receipt_id
            if receipt_id is not None:
                record = pipeline.cut(now)
                records += [record] if record is not None else []
            pipeline.size = seconds
            if receipt_id is not None:
                pipeline.begin(receipt_id, now, wall, self._focused(pipeline.category))
        return records

    # -- the pump ----------------------------------------------------------------------------------

    def pump(self) -> list[AnyWindow]:
        """Move buffered events into windows; return the windows that finished."""
        now = self.clock.monotonic()
        offset = self.clock.time() - now
        records: list[AnyWindow] = []
        focus_changes = self._apply_focus(self.buffers[SourceKind.FOCUS].take_until(now))
        horizon = self._focus_horizon if self._focus_active else now
        records += self.pipelines[Category.APPS].feed(focus_changes, horizon, offset)
        for category in _INPUT_CATEGORIES:
            events = self.buffers[SOURCE_FOR_CATEGORY[category]].take_until(horizon)
            if self._intervals or self._excluded_since is not None:
                events = [e for e in events if not self._in_exclusion(e[0])]
            records += self.pipelines[category].feed(events, horizon, offset)
        self._intervals = [span for span in self._intervals if span[1] > horizon]
        return records

    def _apply_focus(self, samples: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Track exclusion spans and the horizon; return only the samples where focus changed."""
        changes: list[tuple[Any, ...]] = []
        for sample in samples:
            t_lo, t_hi, token, excluded = sample
            if excluded and self._excluded_since is None:
                self._excluded_since = t_lo
            elif not excluded and self._excluded_since is not None:
                self._intervals.append((self._excluded_since, t_hi))
                self._excluded_since = None
            if self._focus != (token, excluded):
                self._focus = (token, excluded)
                changes.append(sample)
            self._focus_horizon = max(self._focus_horizon, t_hi)
        return changes

    def _in_exclusion(self, t: float) -> bool:
        if self._excluded_since is not None and t > self._excluded_since:
            return True
        return any(lo < t <= hi for lo, hi in self._intervals)
