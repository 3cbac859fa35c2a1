"""The employee's own excluded applications (``excluded_apps.json`` in the Consentry home).

These add to the machine policy's ``excluded_apps``: while one of them has focus, no source captures.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.settings_file import EXCLUDED_APPS_FILE, read_settings_file, settings_path, write_settings_file
from vault.paths import Layout

FILE_NAME = EXCLUDED_APPS_FILE


class ExcludedApps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, ge=1, le=1)
    apps: tuple[str, ...] = ()

    @field_validator("apps")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if len(name) > 200 or "\n" in name:
                raise ValueError("an application name is one line of at most 200 characters")
        return tuple(sorted({v.strip().lower() for v in value if v.strip()}))


def excluded_apps_path(layout: Layout) -> Path:
    return settings_path(layout, FILE_NAME)


def read_excluded_apps(layout: Layout) -> ExcludedApps:
    """The employee's list; a missing file is an empty list.

    A damaged or unreadable one is a ValueError naming the file (never its path); the agent then
    captures nothing until it is fixed.
    """
    return read_settings_file(layout, FILE_NAME, ExcludedApps, "excluded-apps list")


def write_excluded_apps(layout: Layout, apps: tuple[str, ...] | list[str]) -> ExcludedApps:
    value = ExcludedApps(apps=tuple(apps))
    write_settings_file(layout, FILE_NAME, value)
    return value
