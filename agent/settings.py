"""The employee's settings files, checked: readable, and the folder list is the one the files grant covers.

Any problem fails closed. An unreadable exclusion list stops all capture (an excluded application
could no longer be recognised); an unreadable folder list, or one that differs from the scope the
latest ``files`` receipt recorded (changed behind the ledger's back), stops files capture. Messages
name the settings file and the command that fixes it, never a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.settings_file import EXCLUDED_APPS_FILE, WATCHED_FOLDERS_FILE, is_absent
from protocol.categories import Category
from protocol.errors import ConsentryError
from vault.consent import SCOPE_SECRET_NAME, CategoryConsent, ConsentSnapshot, folder_scope
from vault.paths import Layout

if TYPE_CHECKING:
    from vault.vault import Vault

EXCLUDED_FIX = "consentry exclude clear, then add your applications again"
FOLDERS_FIX = "consentry consent grant files --folder FOLDER (one --folder per folder)"


def read_exclusions(layout: Layout) -> tuple[tuple[str, ...], str | None]:
    """(the employee's excluded applications, None) or ((), why nothing may be captured)."""
    if is_absent(layout, EXCLUDED_APPS_FILE):
        return (), None  # the usual case, answered without loading the validating model
    from agent.excluded_apps import read_excluded_apps

    try:
        return read_excluded_apps(layout).apps, None
    except ValueError as exc:
        return (), f"{exc}; nothing is captured until it is fixed: {EXCLUDED_FIX}"


def read_folders(layout: Layout) -> tuple[tuple[Path, ...], str | None]:
    """(the watched folders, None) or ((), why files capture may not run)."""
    if is_absent(layout, WATCHED_FOLDERS_FILE):
        return (), None
    from agent.watched_folders import read_watched_folders

    try:
        return read_watched_folders(layout).folders, None
    except ValueError as exc:
        return (), f"{exc}; files capture is stopped until you choose your folders again: {FOLDERS_FIX}"


def scope_problem(folders: tuple[Path, ...], files: CategoryConsent, secret: bytes) -> str | None:
    """Why ``folders`` are not the ones the files grant covers (None: they are, or files is not granted)."""
    if files.state != "granted":
        return None
    if files.scope is not None and folder_scope(folders, secret) == files.scope:
        return None
    return (
        f"{WATCHED_FOLDERS_FILE} does not match the folders you granted (it changed without a grant); "
        f"files capture is stopped until you grant again: {FOLDERS_FIX}"
    )


def settings_problems(layout: Layout, files: CategoryConsent | None, secret: bytes | None) -> list[str]:
    """Every problem with the employee's settings, for status and doctor."""
    problems = []
    _, excluded = read_exclusions(layout)
    if excluded:
        problems.append(excluded)
    folders, unreadable = read_folders(layout)
    if unreadable:
        problems.append(unreadable)
    elif files is not None and secret is not None:
        mismatch = scope_problem(folders, files, secret)
        if mismatch:
            problems.append(mismatch)
    return problems


def check_settings(layout: Layout, vault: Vault | None, snapshot: ConsentSnapshot | None) -> list[str]:
    """``settings_problems`` with the files grant and scope key taken from an open vault, if any."""
    if vault is None or snapshot is None:
        return settings_problems(layout, None, None)
    files = snapshot.categories[Category.FILES]
    secret = None
    if files.state == "granted":
        try:
            secret = vault.local_secret(SCOPE_SECRET_NAME, create=False)
        except ConsentryError:
            secret = bytes(32)  # no scope was ever recorded: no folder list can match it
    return settings_problems(layout, files, secret)
