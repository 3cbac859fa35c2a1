"""File activity in the folders the employee chose (watchdog); names never leave the handler."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from agent.errors import SourceUnavailable
from agent.events import EventSink
from agent.file_paths import WatchedRoot, minimize_path, watched_roots
from agent.sources.base import ThreadedSource
from protocol.categories import FileEventKind

log = logging.getLogger("consentry.agent")

NO_FOLDERS_REASON = "no folders were chosen for file activity; choose them when granting 'files'"
MISSING_REASON = "a watched folder was deleted or moved; file activity there is not captured"
_KINDS = {
    "created": FileEventKind.CREATED,
    "modified": FileEventKind.MODIFIED,
    "deleted": FileEventKind.DELETED,
    "moved": FileEventKind.MOVED,
}


class WatchdogFileSource(ThreadedSource):
    def __init__(
        self,
        folders: Sequence[Path],
        home: Path,
        extensions: frozenset[str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._folders = tuple(folders)
        self._home = home
        self._extensions = extensions
        self._monotonic = monotonic

    def start(self, sink: EventSink) -> None:
        self._check_not_started()
        if not self._folders:
            raise SourceUnavailable(NO_FOLDERS_REASON)
        existing = [f for f in self._folders if f.is_dir()]
        if not existing:
            raise SourceUnavailable(MISSING_REASON)
        try:
            from watchdog.observers import Observer
        except ImportError:
            raise SourceUnavailable("watchdog is not installed (pip install watchdog)") from None
        roots = watched_roots(existing, self._home)
        handler = _Handler(roots, self._extensions, sink, self._monotonic)
        observer = Observer()
        try:
            for folder in existing:
                observer.schedule(cast(Any, handler), str(folder), recursive=True)  # duck-typed handler
            observer.start()
        except OSError as exc:  # inotify watch limit, permission denied; the message would name the path
            raise SourceUnavailable(f"cannot watch the chosen folders ({exc.strerror or type(exc).__name__})") from None
        if len(existing) < len(self._folders):
            log.info(
                "files: %d of %d watched folders are missing",
                len(self._folders) - len(existing),
                len(self._folders),
            )
        self._worker = observer

    def _halt(self, worker: Any) -> None:
        worker.stop()  # a watchdog Observer: a thread that ends when told


class _Handler:
    """A watchdog event handler (duck-typed: watchdog only calls ``dispatch``)."""

    def __init__(
        self,
        roots: tuple[WatchedRoot, ...],
        extensions: frozenset[str],
        sink: EventSink,
        monotonic: Callable[[], float],
    ) -> None:
        self._roots = roots
        self._root_paths = frozenset(r.path for r in roots)
        self._extensions = extensions
        self._sink = sink
        self._monotonic = monotonic

    def dispatch(self, event: Any) -> None:
        kind = _KINDS.get(event.event_type)
        if kind is None:  # opened, closed, closed_no_write: not activity we count
            return
        src = _text(event.src_path)
        if event.is_directory:
            if kind in (FileEventKind.DELETED, FileEventKind.MOVED) and src.rstrip("/") in self._root_paths:
                self._sink.unavailable(MISSING_REASON)
            return
        path = src
        if kind is FileEventKind.MOVED:
            dest = _text(getattr(event, "dest_path", "") or "")
            if dest and minimize_path(dest, self._roots, self._extensions) is not None:
                path = dest
        minimized = minimize_path(path, self._roots, self._extensions)
        if minimized is not None:
            self._sink.put((self._monotonic(), minimized.root_class, minimized.depth, minimized.ext, kind))


def _text(path: str | bytes) -> str:
    return path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path
