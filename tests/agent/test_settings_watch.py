"""The settings watcher: the employee's exclusion and folder lists as the running agent sees them,
re-read when they change, failing closed when they cannot be trusted; real files, a real vault."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.excluded_apps import excluded_apps_path, write_excluded_apps
from agent.settings_watch import SettingsWatcher
from agent.watched_folders import read_watched_folders, watched_folders_path, write_watched_folders
from protocol.categories import Category
from vault import consent_ops
from vault.consent import SCOPE_SECRET_NAME
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    with Vault.open(layout) as vault:
        yield vault


def _touch_later(path: Path) -> None:
    """Move the file's mtime on, as a later edit would (file systems may have a coarse clock)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_changed_exclusion_list_is_noticed_and_read(vault: Vault, layout: Layout) -> None:
    write_excluded_apps(layout, ["KeePassXC"])
    settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
    assert settings.exclusions_changed()  # never read yet
    settings.reload_exclusions()
    assert settings.excluded == ("keepassxc",) and settings.excluded_error is None
    assert not settings.exclusions_changed()
    write_excluded_apps(layout, ["KeePassXC", "Signal"])
    _touch_later(excluded_apps_path(layout))
    assert settings.exclusions_changed()
    settings.reload_exclusions()
    assert settings.excluded == ("keepassxc", "signal")


def test_a_damaged_exclusion_list_fails_closed_and_keeps_the_last_good_one(vault: Vault, layout: Layout) -> None:
    write_excluded_apps(layout, ["KeePassXC"])
    settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
    settings.reload_exclusions()
    excluded_apps_path(layout).write_text('{"version": 1, "apps": 7}')
    settings.reload_exclusions()
    assert settings.excluded_error is not None
    assert settings.excluded_error.startswith("excluded_apps.json cannot be read")
    assert str(layout.home) not in settings.excluded_error
    assert settings.excluded == ("keepassxc",)
    write_excluded_apps(layout, [])
    settings.reload_exclusions()
    assert settings.excluded_error is None and settings.excluded == ()


def test_a_new_folder_list_is_reported_as_a_change_once(vault: Vault, layout: Layout, tmp_path: Path) -> None:
    settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
    assert settings.reload_folders() is False and settings.folders == ()  # no file: no folders
    write_watched_folders(layout, [tmp_path / "projects"])
    assert settings.folders_changed()
    assert settings.reload_folders() is True
    assert settings.folders == ((tmp_path / "projects").resolve(),)
    assert settings.reload_folders() is False and not settings.folders_changed()


def test_files_run_only_on_the_folders_the_grant_covers(vault: Vault, layout: Layout, tmp_path: Path) -> None:
    write_watched_folders(layout, [tmp_path / "projects"])
    granted = read_watched_folders(layout).folders
    consent_ops.grant(
        vault, MachinePolicy(), Category.FILES, method="api", confirmation="yes-flag", now=NOW, folders=granted
    )
    files = vault.consent(MachinePolicy()).categories[Category.FILES]
    settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
    settings.reload_folders()
    assert settings.files_scope_error(files) is None
    write_watched_folders(layout, [tmp_path / "projects", tmp_path / "secrets"])  # behind the ledger's back
    settings.reload_folders()
    error = settings.files_scope_error(files)
    assert error is not None and error.startswith("watched_folders.json does not match the folders you granted")
    assert str(tmp_path) not in error


def test_an_unreadable_folder_list_stops_files_with_its_own_reason(vault: Vault, layout: Layout) -> None:
    layout.home.mkdir(parents=True, exist_ok=True)
    watched_folders_path(layout).write_text("not json")
    settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
    settings.reload_folders()
    files = vault.consent(MachinePolicy()).categories[Category.FILES]
    error = settings.files_scope_error(files)
    assert error is not None and error.startswith("watched_folders.json cannot be read")
    assert settings.folders == ()
