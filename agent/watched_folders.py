"""The folders the employee chose for the ``files`` category (``watched_folders.json`` in the home).

The CLI writes this list at grant time; the agent reads it when the files source starts. The paths
stay on this machine: captured file events keep only ``{root_class, depth, ext}``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.settings_file import WATCHED_FOLDERS_FILE, read_settings_file, settings_path, write_settings_file
from vault.paths import Layout

FILE_NAME = WATCHED_FOLDERS_FILE


class WatchedFolders(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, ge=1, le=1)
    folders: tuple[Path, ...] = ()

    @field_validator("folders")
    @classmethod
    def _absolute(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for folder in value:
            if not folder.is_absolute():
                raise ValueError("watched folders must be absolute paths")
        return tuple(dict.fromkeys(value))


def watched_folders_path(layout: Layout) -> Path:
    return settings_path(layout, FILE_NAME)


def read_watched_folders(layout: Layout) -> WatchedFolders:
    """The chosen folders; a missing file means none.

    A damaged or unreadable one is a ValueError naming the file (never its path); the agent then
    stops files capture until the employee chooses the folders again.
    """
    return read_settings_file(layout, FILE_NAME, WatchedFolders, "folder list")


def write_watched_folders(layout: Layout, folders: list[Path] | tuple[Path, ...]) -> WatchedFolders:
    """Store the employee's choice (made absolute; they need not exist yet)."""
    value = WatchedFolders(folders=tuple(Path(f).expanduser().resolve() for f in folders))
    write_settings_file(layout, FILE_NAME, value)
    return value
