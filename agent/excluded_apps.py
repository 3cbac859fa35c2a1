"""The employee's own excluded applications (``excluded_apps.json`` in the Consentry home).

These add to the machine policy's ``excluded_apps``: while one of them has focus, no source captures.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vault.atomic import write_atomic
from vault.paths import Layout

FILE_NAME = "excluded_apps.json"


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
    return layout.home / FILE_NAME


def read_excluded_apps(layout: Layout) -> ExcludedApps:
    """The employee's list; a missing file is an empty list.

    A damaged or unreadable one is a ValueError naming the file (never its path); the agent then
    captures nothing until it is fixed.
    """
    path = excluded_apps_path(layout)
    try:
        return ExcludedApps.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return ExcludedApps()
    except OSError as exc:  # a folder in its place, no permission, an I/O error: never the path
        raise ValueError(f"{FILE_NAME} cannot be read ({exc.strerror or type(exc).__name__})") from None
    except ValidationError as exc:
        raise ValueError(
            f"{FILE_NAME} cannot be read (not a valid excluded-apps list: {exc.error_count()} problem(s))"
        ) from None


def write_excluded_apps(layout: Layout, apps: tuple[str, ...] | list[str]) -> ExcludedApps:
    value = ExcludedApps(apps=tuple(apps))
    write_atomic(excluded_apps_path(layout), value.model_dump_json(indent=2).encode() + b"\n")
    return value
