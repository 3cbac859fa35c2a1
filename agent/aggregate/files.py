"""File events of one window -> FilesWindow: counts per {root_class, depth, ext, kind}, no names."""

from __future__ import annotations

from collections import Counter

from protocol.categories import FileEventKind, RootClass
from protocol.windows import FileEventCount, FilesWindow


class FilesAccumulator:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[tuple[RootClass, int, str | None, FileEventKind]] = Counter()

    def add(self, event: tuple[float, RootClass, int, str | None, FileEventKind]) -> None:
        self.counts[event[1:]] += 1

    def finish(self, start: int, end: int, receipt_id: str, at: float | None = None) -> FilesWindow | None:
        if not self.counts:
            return None
        events = tuple(
            FileEventCount(root_class=root, depth=depth, ext=ext, kind=kind, count=count)
            for (root, depth, ext, kind), count in sorted(
                self.counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "", item[0][3])
            )
        )
        return FilesWindow(start=start, end=end, receipt_id=receipt_id, events=events)
