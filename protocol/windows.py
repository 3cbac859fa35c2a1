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

SCHEMA_VERSION = 1

# Inter-key interval histogram: bin i counts intervals in [EDGES[i], EDGES[i+1]) milliseconds; the
# last bin is open-ended. Coarse on purpose: per-key timings are behavioural biometrics.
IKI_BIN_EDGES_MS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 500, 1000, 2000)
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


def iki_bin_labels() -> tuple[str, ...]:
    """Each inter-key interval bin in words, in order: "under 50 ms", "50 to 100 ms", ..., "2,000 ms or more"."""
    edges = IKI_BIN_EDGES_MS
    labels = [f"under {edges[1]:,} ms"]
    labels += [f"{low:,} to {high:,} ms" for low, high in zip(edges[1:-1], edges[2:], strict=True)]
    labels.append(f"{edges[-1]:,} ms or more")
    return tuple(labels)


# The record fields' meanings, in plain words with their units: the one source of the data inventory
# (docs/privacy/inventory.md renders these descriptions) and of the schema the store publishes.
_KEY_CLASSES = ", ".join(c.value for c in KeyClass)
_IKI_BINS = "; ".join(f"bin {i + 1}: {label}" for i, label in enumerate(iki_bin_labels()))


class _WindowBase(BaseModel):
    model_config = _frozen

    start: int = Field(ge=0, description="when the window began, in seconds since 1970-01-01 00:00 UTC")
    end: int = Field(ge=0, description="when the window ended (exclusive), in seconds since 1970-01-01 00:00 UTC")
    receipt_id: str = Field(
        min_length=1, max_length=64, description="the id of the consent grant under which the window was captured"
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> _WindowBase:
        if self.end <= self.start:
            raise ValueError(f"window end ({self.end}) must be after its start ({self.start})")
        return self


class KeyboardWindow(_WindowBase):
    category: Literal["keyboard"] = Field(default="keyboard", description="which kind of record this is")
    key_counts: dict[KeyClass, Annotated[int, Field(ge=0)]] = Field(
        description=f"key presses in the window, counted per class of key ({_KEY_CLASSES}); which key or "
        "character was pressed is never kept"
    )
    iki_histogram: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        description="typing rhythm: how many gaps between two consecutive key presses of the window fell in each "
        f"of {len(IKI_BIN_EDGES_MS)} coarse ranges, in milliseconds ({_IKI_BINS})"
    )
    bursts: int = Field(
        ge=0,
        description=f"stretches of typing: runs of at least {BURST_MIN_PRESSES} key presses with no gap of "
        f"{PAUSE_GAP_SECONDS:g} seconds or more between them (a count)",
    )
    longest_burst: int = Field(ge=0, description="key presses in the longest of those runs (a count of presses)")
    pauses: int = Field(
        ge=0, description=f"gaps of {PAUSE_GAP_SECONDS:g} seconds or more between two key presses (a count)"
    )
    correction_ratio: float = Field(
        ge=0.0,
        le=1.0,
        description="share of the window's key presses that were editing keys (Backspace, Delete and the like), "
        "from 0 (none) to 1 (all)",
    )
    sparse: bool = Field(
        default=False,
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
    category: Literal["mouse"] = Field(default="mouse", description="which kind of record this is")
    clicks: dict[MouseButton, Annotated[int, Field(ge=0)]] = Field(
        description="clicks in the window, counted per button; where the pointer was is never kept"
    )
    scroll_steps: int = Field(ge=0, description="scroll-wheel steps (notches), all directions added up (a count)")
    moves: int = Field(ge=0, description="pointer movement events reported by the system (a count)")
    distance_px: float = Field(
        ge=0.0,
        description="how far the pointer travelled in the window, in screen pixels, along straight lines between "
        "successive positions (the positions themselves are never kept)",
    )
    idle_seconds: float = Field(
        ge=0.0,
        description=f"seconds of the window with no mouse event for more than {MOUSE_IDLE_GAP_SECONDS:g} second, "
        "added up",
    )


class AppFocus(BaseModel):
    model_config = _frozen

    app: str = Field(
        description="the application in focus: cat:<category> for an allow-listed kind (ide, browser, ...) or "
        "anon:<16 hex>, a pseudonym keyed per batch; never a name or a window title"
    )
    seconds: float = Field(ge=0.0, description="seconds it had the focus in the window")

    @field_validator("app")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        if not APP_TOKEN_PATTERN.match(value):
            raise ValueError("app must be 'cat:<category>' or 'anon:<16 hex digits>', never a name")
        return value


class AppsWindow(_WindowBase):
    category: Literal["apps"] = Field(default="apps", description="which kind of record this is")
    focus: tuple[AppFocus, ...] = Field(description="one entry per application that had the focus in the window")
    switches: int = Field(ge=0, description="changes of focus from one application to another (a count)")


class FileEventCount(BaseModel):
    model_config = _frozen

    root_class: RootClass = Field(description="the kind of folder the file is in, among the folders the employee chose")
    depth: int = Field(
        ge=0, le=MAX_FILE_DEPTH, description="how many folders deep below that folder the file is (0: directly in it)"
    )
    ext: str | None = Field(
        default=None, description="the file's extension if the policy allow-lists it, else null; never a name"
    )
    kind: FileEventKind = Field(description="what happened to the file")
    count: int = Field(ge=1, description="how many such events in the window")

    @field_validator("ext")
    @classmethod
    def _ext_shape(cls, value: str | None) -> str | None:
        if value is not None and not EXTENSION_PATTERN.match(value):
            raise ValueError("ext must be a short lowercase allow-listed extension or null")
        return value


class FilesWindow(_WindowBase):
    category: Literal["files"] = Field(default="files", description="which kind of record this is")
    events: tuple[FileEventCount, ...] = Field(
        description="file events in the watched folders, counted per kind of folder, depth, extension and kind"
    )


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
