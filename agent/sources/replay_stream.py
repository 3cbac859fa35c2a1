"""Recorded (JSON lines) and synthetic input streams for the replay source.

A recording is UTF-8 JSON lines. The first line is the header, every other line one event::

    {"format": "consentry-replay", "version": 1}
    {"t": 0.12, "type": "key", "key_class": "letter"}
    {"t": 0.20, "type": "move", "x": 10, "y": 20}
    {"t": 0.31, "type": "click", "button": "left"}
    {"t": 0.40, "type": "scroll", "steps": 1}
    {"t": 0.50, "type": "focus", "app": "firefox"}
    {"t": 0.90, "type": "file", "root_class": "documents", "depth": 0, "ext": "md", "kind": "modified"}

``t`` is seconds from the start of the stream. Keys are classes and files are already minimised, so
a recording holds nothing a window record could not; ``focus`` names an application the way a
platform backend would, so replaying it exercises the allow-list, pseudonyms and exclusions.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agent.events import CLICK, MOVE, SCROLL
from agent.sources.base import SourceKind
from protocol.categories import FileEventKind, KeyClass, MouseButton, RootClass
from protocol.windows import EXTENSION_PATTERN, MAX_FILE_DEPTH

FORMAT = "consentry-replay"
VERSION = 1
_frozen = ConfigDict(frozen=True, extra="forbid")

# (offset seconds, payload): the payload is an event tuple without its timestamp; a focus payload
# is the application's name, resolved by the replay source like a platform backend's answer.
StreamItem = tuple[float, tuple[Any, ...]]


class _Line(BaseModel):
    model_config = _frozen
    t: float = Field(ge=0.0)


class KeyLine(_Line):
    type: Literal["key"]
    key_class: KeyClass


class MoveLine(_Line):
    type: Literal["move"]
    x: int
    y: int


class ClickLine(_Line):
    type: Literal["click"]
    button: MouseButton


class ScrollLine(_Line):
    type: Literal["scroll"]
    steps: int = Field(ge=1, le=1000)


class FocusLine(_Line):
    type: Literal["focus"]
    app: str = Field(max_length=200, description="application name as a platform would report it; '' = none")


class FileLine(_Line):
    type: Literal["file"]
    root_class: RootClass
    depth: int = Field(ge=0, le=MAX_FILE_DEPTH)
    ext: str | None = Field(default=None, pattern=EXTENSION_PATTERN.pattern)
    kind: FileEventKind


ReplayLine = Annotated[KeyLine | MoveLine | ClickLine | ScrollLine | FocusLine | FileLine, Field(discriminator="type")]
_ADAPTER: TypeAdapter[KeyLine | MoveLine | ClickLine | ScrollLine | FocusLine | FileLine] = TypeAdapter(ReplayLine)


class Header(BaseModel):
    model_config = _frozen
    format: Literal["consentry-replay"]
    version: Literal[1]


def line_item(
    line: KeyLine | MoveLine | ClickLine | ScrollLine | FocusLine | FileLine,
) -> tuple[SourceKind, StreamItem]:
    if isinstance(line, KeyLine):
        return SourceKind.KEYBOARD, (line.t, (line.key_class,))
    if isinstance(line, MoveLine):
        return SourceKind.MOUSE, (line.t, (MOVE, line.x, line.y))
    if isinstance(line, ClickLine):
        return SourceKind.MOUSE, (line.t, (CLICK, line.button, 0))
    if isinstance(line, ScrollLine):
        return SourceKind.MOUSE, (line.t, (SCROLL, line.steps, 0))
    if isinstance(line, FocusLine):
        return SourceKind.FOCUS, (line.t, (line.app,))
    return SourceKind.FILES, (line.t, (line.root_class, line.depth, line.ext, line.kind))


def read_recording(path: Path, kind: SourceKind) -> Iterator[StreamItem]:
    """The items of one source kind in a recording, validated line by line."""
    with path.open(encoding="utf-8") as handle:
        try:
            Header.model_validate_json(handle.readline())
        except ValidationError:
            raise ValueError(f"not a {FORMAT} v{VERSION} recording (bad header line)") from None
        for number, text in enumerate(handle, start=2):
            if not text.strip():
                continue
            try:
                line = _ADAPTER.validate_json(text)
            except ValidationError as exc:
                raise ValueError(f"recording line {number}: {exc.errors()[0]['msg']}") from None
            item_kind, item = line_item(line)
            if item_kind is kind:
                yield item


class SyntheticSpec(BaseModel):
    """A deterministic synthetic workload: the same seed gives the same stream, byte for byte."""

    model_config = _frozen

    seed: int = 0
    seconds: float | None = Field(default=None, gt=0, description="stream length; None = endless")
    key_rate: float = Field(default=4.0, ge=0, description="key presses per second")
    move_rate: float = Field(default=30.0, ge=0, description="pointer moves per second")
    click_rate: float = Field(default=0.3, ge=0)
    scroll_rate: float = Field(default=0.2, ge=0)
    file_rate: float = Field(default=0.1, ge=0)
    focus_every: float = Field(default=20.0, gt=0, description="mean seconds between focus changes")
    apps: tuple[str, ...] = (
        "code",
        "firefox",
        "xterm",
        "slack",
        "thunderbird",
        "libreoffice",
        "inhouse-tool",
    )

    @classmethod
    def parse(cls, text: str) -> SyntheticSpec:
        """``seed=3,key_rate=10,move_rate=1000,seconds=60`` (any subset; apps as a|b|c)."""
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"synthetic option {part!r} must look like name=value")
            fields[name.strip()] = tuple(value.split("|")) if name.strip() == "apps" else value.strip()
        return cls.model_validate(fields)


# Relative frequencies of key classes in ordinary typing (roughly English prose plus editing).
_KEY_WEIGHTS: tuple[tuple[KeyClass, float], ...] = (
    (KeyClass.LETTER, 0.70),
    (KeyClass.SPACE, 0.13),
    (KeyClass.PUNCTUATION, 0.04),
    (KeyClass.DIGIT, 0.02),
    (KeyClass.MODIFIER, 0.03),
    (KeyClass.EDITING, 0.05),
    (KeyClass.NAVIGATION, 0.02),
    (KeyClass.FUNCTION, 0.002),
    (KeyClass.OTHER, 0.008),
)
_BUTTON_WEIGHTS = ((MouseButton.LEFT, 0.85), (MouseButton.RIGHT, 0.12), (MouseButton.MIDDLE, 0.03))


def synthetic_stream(spec: SyntheticSpec, kind: SourceKind) -> Iterator[StreamItem]:
    """The items of one source kind; each kind has its own generator seeded from (seed, kind)."""
    rng = random.Random(f"consentry-synthetic:{spec.seed}:{kind.value}")
    end = float("inf") if spec.seconds is None else spec.seconds
    if kind is SourceKind.KEYBOARD:
        yield from _keys(rng, spec, end)
    elif kind is SourceKind.MOUSE:
        yield from _mouse(rng, spec, end)
    elif kind is SourceKind.FOCUS:
        yield from _focus(rng, spec, end)
    else:
        yield from _files(rng, spec, end)


def _keys(rng: random.Random, spec: SyntheticSpec, end: float) -> Iterator[StreamItem]:
    if spec.key_rate <= 0:
        return
    classes = [c for c, _ in _KEY_WEIGHTS]
    weights = [w for _, w in _KEY_WEIGHTS]
    t = 0.0
    while True:
        # Typing comes in bursts: mostly short gaps, now and then a thinking pause.
        t += rng.expovariate(spec.key_rate) * (6.0 if rng.random() < 0.03 else 1.0)
        if t >= end:
            return
        yield (t, (rng.choices(classes, weights)[0],))


def _mouse(rng: random.Random, spec: SyntheticSpec, end: float) -> Iterator[StreamItem]:
    rate = spec.move_rate + spec.click_rate + spec.scroll_rate
    if rate <= 0:
        return
    buttons = [b for b, _ in _BUTTON_WEIGHTS]
    weights = [w for _, w in _BUTTON_WEIGHTS]
    x, y, t = 960, 540, 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        pick = rng.random() * rate
        if pick < spec.move_rate:
            x = min(3839, max(0, x + rng.randint(-12, 12)))
            y = min(2159, max(0, y + rng.randint(-8, 8)))
            yield (t, (MOVE, x, y))
        elif pick < spec.move_rate + spec.click_rate:
            yield (t, (CLICK, rng.choices(buttons, weights)[0], 0))
        else:
            yield (t, (SCROLL, rng.randint(1, 5), 0))


def _focus(rng: random.Random, spec: SyntheticSpec, end: float) -> Iterator[StreamItem]:
    t = 0.0
    while t < end:
        yield (t, (rng.choice(spec.apps),))
        t += rng.expovariate(1.0 / spec.focus_every)


def _files(rng: random.Random, spec: SyntheticSpec, end: float) -> Iterator[StreamItem]:
    if spec.file_rate <= 0:
        return
    roots = (RootClass.DOCUMENTS, RootClass.PROJECTS, RootClass.DOWNLOADS)
    exts = ("py", "md", "txt", "json", None)
    kinds = (FileEventKind.MODIFIED, FileEventKind.MODIFIED, FileEventKind.CREATED, FileEventKind.DELETED)
    t = 0.0
    while True:
        t += rng.expovariate(spec.file_rate)
        if t >= end:
            return
        yield (t, (rng.choice(roots), rng.randint(0, 4), rng.choice(exts), rng.choice(kinds)))


def write_recording(path: Path, spec: SyntheticSpec) -> int:
    """Write a finite synthetic stream as a recording (for demos and fixtures); returns the event count."""
    if spec.seconds is None:
        raise ValueError("only a finite stream (seconds=...) can be written")
    lines: list[tuple[float, dict[str, Any]]] = []
    for kind in SourceKind:
        for t, payload in synthetic_stream(spec, kind):
            lines.append((t, _to_line(kind, payload)))
    lines.sort(key=lambda item: item[0])
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
        for t, fields in lines:
            handle.write(json.dumps({"t": round(t, 6), **fields}) + "\n")
    return len(lines)


def _to_line(kind: SourceKind, payload: tuple[Any, ...]) -> dict[str, Any]:
    if kind is SourceKind.KEYBOARD:
        return {"type": "key", "key_class": payload[0].value}
    if kind is SourceKind.FOCUS:
        return {"type": "focus", "app": payload[0]}
    if kind is SourceKind.FILES:
        root, depth, ext, file_kind = payload
        return {"type": "file", "root_class": root.value, "depth": depth, "ext": ext, "kind": file_kind.value}
    code, a, b = payload
    if code == MOVE:
        return {"type": "move", "x": a, "y": b}
    if code == CLICK:
        return {"type": "click", "button": a.value}
    return {"type": "scroll", "steps": a}
