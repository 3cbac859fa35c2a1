"""Windows aligned to the UTC wall clock: which window a moment falls in, and where it ends."""

from __future__ import annotations

import math


def window_start(wall: float, size: int) -> int:
    """The aligned start (UTC epoch seconds) of the ``size``-second window holding ``wall``."""
    if size < 1:
        raise ValueError("a window is at least one second long")
    return int(math.floor(wall / size)) * size


def window_end(wall: float, size: int) -> int:
    return window_start(wall, size) + size


def cut_end(start: int, at: float) -> int:
    """Record end for a window cut at ``at``: whole seconds, rounded up, and after ``start``."""
    return max(start + 1, int(math.ceil(at)))
