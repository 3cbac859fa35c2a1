"""The employee's JSON settings files in the Consentry home: their names, read fail-closed, written atomically.

Importing this module loads no pydantic: read commands that find no settings file stay light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from protocol.atomic import write_atomic
from vault.paths import Layout

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

EXCLUDED_APPS_FILE = "excluded_apps.json"
WATCHED_FOLDERS_FILE = "watched_folders.json"


def settings_path(layout: Layout, file_name: str) -> Path:
    return layout.home / file_name


def is_absent(layout: Layout, file_name: str) -> bool:
    """The file is certainly not there (reading it would give the empty setting); False when unsure."""
    try:
        os.stat(settings_path(layout, file_name))
    except FileNotFoundError:
        return True
    except OSError:
        return False  # let the reader say what is wrong
    return False


def read_settings_file(layout: Layout, file_name: str, model: type[M], what: str) -> M:
    """The file's content; a missing file is ``model()`` (the empty setting).

    A damaged or unreadable one is a ValueError naming the file (never its path), so callers can
    stop capture until the employee fixes it; ``what`` says what the file should hold.
    """
    from pydantic import ValidationError

    try:
        return model.model_validate_json(settings_path(layout, file_name).read_bytes())
    except FileNotFoundError:
        return model()
    except OSError as exc:  # a folder in its place, no permission, an I/O error: never the path
        raise ValueError(f"{file_name} cannot be read ({exc.strerror or type(exc).__name__})") from None
    except ValidationError as exc:
        raise ValueError(f"{file_name} cannot be read (not a valid {what}: {exc.error_count()} problem(s))") from None


def write_settings_file(layout: Layout, file_name: str, value: BaseModel) -> None:
    write_atomic(settings_path(layout, file_name), value.model_dump_json(indent=2).encode() + b"\n")
