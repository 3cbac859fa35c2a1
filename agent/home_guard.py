"""Whether the files the running agent holds are still the ones at their paths.

The agent keeps its vault and its single-instance lock open for its whole run. When the Consentry folder is
deleted (by the employee, a clean-up tool, IT resetting a profile) or the vault is replaced (a backup put
back), the agent would go on capturing into a file that no command can show, erase or reach, while
``consentry status`` finds no agent. ``Agent`` asks ``lost()`` once a second and stops.
"""

from __future__ import annotations

import os
from pathlib import Path

from vault.paths import Layout


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class HomeGuard:
    def __init__(self, layout: Layout) -> None:
        # What each name means to the employee, and the file it was when the agent started (a file that
        # did not exist then, as in tests that run the agent's loop without its lock, is not watched).
        watched = (("your vault", layout.vault_db), ("the agent's lock file", layout.agent_lock))
        self._watched = [(name, path, identity) for name, path in watched if (identity := _identity(path))]

    def lost(self) -> str | None:
        """The first watched file that is gone or is another file now (named for the employee), or None."""
        for name, path, identity in self._watched:
            if _identity(path) != identity:
                return name
        return None
