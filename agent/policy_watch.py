"""Notice changes to the machine policy file at once (watchdog on its folder)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

log = logging.getLogger("consentry.agent")

Stamp = tuple[int, int, int] | None


def policy_stamp(path: Path) -> Stamp:
    """Identity of the file's current content for change detection (None when it is missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class PolicyWatcher:
    """Calls ``changed`` from watchdog's thread when anything touches the policy file.

    The agent also compares ``policy_stamp`` once a second, which covers a policy folder that does
    not exist yet (watchdog cannot watch it) and editors that replace the folder's entries.
    """

    def __init__(self, path: Path, changed: Callable[[], None]) -> None:
        self._path = path
        self._changed = changed
        self._observer: Any = None

    def start(self) -> bool:
        folder = self._path.parent
        if not folder.is_dir():
            return False
        try:
            from watchdog.observers import Observer
        except ImportError:
            return False
        observer = Observer()
        try:
            observer.schedule(cast(Any, self), str(folder), recursive=False)  # duck-typed handler
            observer.start()
        except OSError as exc:
            log.warning("cannot watch the policy folder (%s); checking it every second", type(exc).__name__)
            return False
        self._observer = observer
        return True

    def dispatch(self, event: Any) -> None:
        names = {
            os.path.basename(str(event.src_path)),
            os.path.basename(str(getattr(event, "dest_path", "") or "")),
        }
        if self._path.name in names:
            self._changed()

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2.0)
