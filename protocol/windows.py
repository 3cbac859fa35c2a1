"""The window records: the only shapes captured data may take, in the vault and in released batches.

Every record summarises one aggregation window (policy, 60 s by default) of one category. There is no
free-text field anywhere: keys are classes, applications are allow-listed categories or pseudonymous
tokens, files are ``{root_class, depth, extension-if-allow-listed}``. ``extra="forbid"`` makes a field
outside this schema a validation error, which the batch privacy checks rely on.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator, model_validator

from protocol.categories import FileEventKind, KeyClass, MouseButton, RootClass
from protocol.modelconfig import BOUNDARY
from protocol.record_words import IKI_BIN_EDGES_MS, iki_bin_labels, meaning  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1
# The inter-key interval bins (IKI_BIN_EDGES_MS) are defined in protocol.record_words, beside the words
# that name them; every field's description comes from there too.
# A gap at least this long ends a burst and counts as a pause.
PAUSE_GAP_SECONDS = 2.0
# A burst is at least this many presses with no pause between them.
BURST_MIN_PRESSES = 3
# A keyboard window with fewer presses than this keeps no detail, only that the keyboard was used
# (``sparse``): a window in which only a password was typed would otherwise record its length and its
# letter/digit/punctuation mix. 32 is above a typical login typed in one window (user name, Tab, a
# 16-character password with its Shift presses, Enter: 28) and a four-word passphrase; see
# docs/privacy/threat-model.md for what it does not cover.
KEYBOARD_MIN_PRESSES = 32
# Mouse idle time: gaps between mouse events longer than this add to ``idle_seconds``.
MOUSE_IDLE_GAP_SECONDS = 1.0
MAX_FILE_DEPTH = 16

# "cat:<AppCategory>" for allow-listed applications, "anon:<16 hex>" for a keyed pseudonym.
APP_TOKEN_PATTERN = re.compile(r"^(cat:[a-z_]{2,32}|anon:[0-9a-f]{16})$")
# An allow-listed extension: lowercase letters and digits only, never a name.
EXTENSION_PATTERN = re.compile(r"^[a-z0-9]{1,10}$")

_frozen = BOUNDARY
# Numbers and flags are strict (no "6" for 6, no 0 for false): the store keeps each record as sent, so a
# converted value would be stored in its sent form and break what reads it as a number.


class _WindowBase(BaseModel):
    model_config = _frozen

    start: int = Field(strict=True, ge=0, description=meaning("common", "start"))
    end: int = Field(strict=True, ge=0, description=meaning("common", "end"))
    receipt_id: str = Field(min_length=1, max_length=64, description=meaning("common", "receipt_id"))

    @model_validator(mode="after")
    def _end_after_start(self) -> _WindowBase:
        if self.end <= self.start:
            raise ValueError(f"window end ({self.end}) must be after its start ({self.start})")
        return self


class KeyboardWindow(_WindowBase):
    category: Literal["keyboard"] = Field(default="keyboard", description=meaning("common", "category"))
    key_counts: dict[KeyClass, Annotated[int, Field(ge=0, strict=True)]] = Field(
        description=meaning("keyboard", "key_counts")
    )
    iki_histogram: tuple[Annotated[int, Field(ge=0, strict=True)], ...] = Field(
        description=meaning("keyboard", "iki_histogram")
    )
    bursts: int = Field(strict=True, ge=0, description=meaning("keyboard", "bursts"))
    longest_burst: int = Field(strict=True, ge=0, description=meaning("keyboard", "longest_burst"))
    pauses: int = Field(strict=True, ge=0, description=meaning("keyboard", "pauses"))
    correction_ratio: float = Field(strict=True, ge=0.0, le=1.0, description=meaning("keyboard", "correction_ratio"))
    sparse: bool = Field(
        default=False,
        strict=True,
        description=f"the keyboard was used, fewer than {KEYBOARD_MIN_PRESSES} presses: every count and statistic is withheld (zero)",
    )

    @model_validator(mode="after")
    def _sparse_carries_nothing(self) -> KeyboardWindow:
        if self.sparse and (
            any(self.key_counts.values())
            or any(self.iki_histogram)
            or self.bursts
            or self.longest_burst
            or self.pauses
            or self.correction_ratio
        ):
            raise ValueError("a sparse keyboard window must carry no counts or statistics")
        return self

    @classmethod
    def sparse_window(cls, start: int, end: int, receipt_id: str) -> KeyboardWindow:
        """A window with too few presses to keep anything but that the keyboard was used."""
        return cls(
            start=start,
            end=end,
            receipt_id=receipt_id,
            key_counts=dict.fromkeys(KeyClass, 0),
            iki_histogram=(0,) * len(IKI_BIN_EDGES_MS),
            bursts=0,
            longest_burst=0,
            pauses=0,
            correction_ratio=0.0,
            sparse=True,
        )

    @field_validator("iki_histogram")
    @classmethod
    def _histogram_length(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) != len(IKI_BIN_EDGES_MS):
            raise ValueError(f"iki_histogram needs {len(IKI_BIN_EDGES_MS)} bins, got {len(value)}")
        return value


class MouseWindow(_WindowBase):
    category: Literal["mouse"] = Field(default="mouse", description=meaning("common", "category"))
    clicks: dict[MouseButton, Annotated[int, Field(ge=0, strict=True)]] = Field(description=meaning("mouse", "clicks"))
    scroll_steps: int = Field(strict=True, ge=0, description=meaning("mouse", "scroll_steps"))
    moves: int = Field(strict=True, ge=0, description=meaning("mouse", "moves"))
    distance_px: float = Field(strict=True, ge=0.0, description=meaning("mouse", "distance_px"))
    idle_seconds: float = Field(strict=True, ge=0.0, description=meaning("mouse", "idle_seconds"))


class AppFocus(BaseModel):
    model_config = _frozen

    app: str = Field(
        description="the application in focus: cat:<category> for an allow-listed kind (ide, browser, ...) or "
        "anon:<16 hex>, a pseudonym keyed per batch; never a name or a window title"
    )
    seconds: float = Field(strict=True, ge=0.0, description="seconds it had the focus in the window")

    @field_validator("app")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        if not APP_TOKEN_PATTERN.match(value):
            raise ValueError("app must be 'cat:<category>' or 'anon:<16 hex digits>', never a name")
        return value


class AppsWindow(_WindowBase):
    category: Literal["apps"] = Field(default="apps", description=meaning("common", "category"))
    focus: tuple[AppFocus, ...] = Field(description=meaning("apps", "focus"))
    switches: int = Field(strict=True, ge=0, description=meaning("apps", "switches"))


class FileEventCount(BaseModel):
    model_config = _frozen

    root_class: RootClass = Field(description="the kind of folder the file is in, among the folders the employee chose")
    depth: int = Field(
        strict=True,
        ge=0,
        le=MAX_FILE_DEPTH,
        description="how many folders deep below that folder the file is (0: directly in it)",
    )
    ext: str | None = Field(
        default=None, description="the file's extension if the policy allow-lists it, else null; never a name"
    )
    kind: FileEventKind = Field(description="what happened to the file")
    count: int = Field(strict=True, ge=1, description="how many such events in the window")

    @field_validator("ext")
    @classmethod
    def _ext_shape(cls, value: str | None) -> str | None:
        if value is not None and not EXTENSION_PATTERN.match(value):
            raise ValueError("ext must be a short lowercase allow-listed extension or null")
        return value


class FilesWindow(_WindowBase):
    category: Literal["files"] = Field(default="files", description=meaning("common", "category"))
    events: tuple[FileEventCount, ...] = Field(description=meaning("files", "events"))


WindowRecord = Annotated[KeyboardWindow | MouseWindow | AppsWindow | FilesWindow, Field(discriminator="category")]
AnyWindow = KeyboardWindow | MouseWindow | AppsWindow | FilesWindow


@functools.cache
def window_adapter() -> TypeAdapter[AnyWindow]:
    """The validator for any window record, built on first use (see protocol.modelconfig)."""
    return TypeAdapter(WindowRecord)


def parse_window(data: bytes | str | dict[str, object]) -> AnyWindow:
    """Validate a window record from JSON bytes/str or a dict; raises pydantic.ValidationError."""
    if isinstance(data, (bytes, str)):
        return window_adapter().validate_json(data)
    return window_adapter().validate_python(data)


def window_to_json_dict(record: AnyWindow) -> dict[str, object]:
    return record.model_dump(mode="json")
