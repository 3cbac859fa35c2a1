"""Focus changes of one window -> AppsWindow: seconds per application token, and switches.

Time while an excluded application (or nothing) has focus is attributed to no token at all.
"""

from __future__ import annotations

from protocol.windows import AppFocus, AppsWindow


class AppsAccumulator:
    __slots__ = ("_last_token", "_since", "current", "seconds", "switches")

    def __init__(self, start: float, current: str | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.switches = 0
        self.current = current  # the token focused now (carried into the next window)
        self._since = start
        self._last_token = current

    def add(self, event: tuple[float, float, str | None, bool]) -> None:
        _, t, token, excluded = event
        if excluded:
            token = None
        self._credit(t)
        if token is not None and self._last_token is not None and token != self._last_token:
            self.switches += 1
        if token is not None:
            self._last_token = token
        self.current = token

    def _credit(self, until: float) -> None:
        if self.current is not None and until > self._since:
            self.seconds[self.current] = self.seconds.get(self.current, 0.0) + (until - self._since)
        self._since = max(self._since, until)

    def finish(self, start: int, end: int, receipt_id: str, at: float | None = None) -> AppsWindow | None:
        self._credit(end if at is None else at)
        focus = tuple(
            AppFocus(app=token, seconds=round(seconds, 1))
            for token, seconds in sorted(self.seconds.items())
            if seconds >= 0.05
        )
        if not focus:
            return None
        return AppsWindow(start=start, end=end, receipt_id=receipt_id, focus=focus, switches=self.switches)
