"""The employee's settings files as the running agent sees them: re-read when they change on disk.

Problems are kept, not raised, so the consent gate can fail closed on them (see agent/settings.py):
an unreadable exclusion list stops all capture, an unreadable folder list or one the files grant does
not cover stops files capture. The last readable exclusion list is kept while the file is broken.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.excluded_apps import excluded_apps_path
from agent.policy_watch import Stamp, policy_stamp
from agent.settings import read_exclusions, read_folders, scope_problem
from agent.watched_folders import watched_folders_path
from vault.consent import CategoryConsent
from vault.paths import Layout

log = logging.getLogger("consentry.agent")


class SettingsWatcher:
    def __init__(self, layout: Layout, scope_secret: bytes) -> None:
        self._layout = layout
        self._scope_secret = scope_secret
        self.excluded: tuple[str, ...] = ()
        self.excluded_error: str | None = None  # None while the exclusion list is readable
        self.folders: tuple[Path, ...] = ()
        self.folders_error: str | None = None
        self._excluded_stamp: Stamp = None
        self._folders_stamp: Stamp = None
        self._scope_checked: tuple[object, ...] | None = None
        self._scope_error: str | None = None

    def exclusions_changed(self) -> bool:
        return policy_stamp(excluded_apps_path(self._layout)) != self._excluded_stamp

    def folders_changed(self) -> bool:
        return policy_stamp(watched_folders_path(self._layout)) != self._folders_stamp

    def reload_exclusions(self) -> None:
        self._excluded_stamp = policy_stamp(excluded_apps_path(self._layout))
        apps, problem = read_exclusions(self._layout)
        if problem is not None and self.excluded_error is None:
            log.error("the employee's exclusion list cannot be read: all capture stops until it is fixed")
        elif problem is None and self.excluded_error is not None:
            log.info("the employee's exclusion list is readable again")
        self.excluded_error = problem
        if problem is None:
            self.excluded = apps

    def reload_folders(self) -> bool:
        """Re-read the watched folders; True when the list changed (the files source must restart)."""
        self._folders_stamp = policy_stamp(watched_folders_path(self._layout))
        folders, problem = read_folders(self._layout)
        if problem is not None and self.folders_error is None:
            log.error("the employee's folder list cannot be read: files capture stops until it is fixed")
        self.folders_error = problem
        if folders == self.folders:
            return False
        self.folders = folders
        return True

    def files_scope_error(self, files: CategoryConsent) -> str | None:
        """Why files capture may not run on the current folder list (None: it may)."""
        if self.folders_error is not None:
            return self.folders_error
        checked = (self.folders, files.state, files.receipt_id)
        if checked != self._scope_checked:  # the keyed hash only when the folders or the grant changed
            self._scope_checked = checked
            self._scope_error = scope_problem(self.folders, files, self._scope_secret)
        return self._scope_error
