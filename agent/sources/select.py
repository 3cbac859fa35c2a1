"""The one function that chooses a backend for each kind of source."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.app_tokens import AppResolver
from agent.errors import SourceUnavailable, UnsupportedPlatform
from agent.sources.base import Source, SourceKind
from agent.sources.focus import FocusBackend, FocusSource
from agent.sources.replay_stream import StreamItem, SyntheticSpec, read_recording, synthetic_stream
from agent.sources.session import session_problem


@dataclass(frozen=True)
class ReplayConfig:
    """Replay instead of live capture: a recording file, or a synthetic stream."""

    recording: Path | None = None
    synthetic: SyntheticSpec | None = None
    speed: float = 1.0

    def __post_init__(self) -> None:
        if (self.recording is None) == (self.synthetic is None):
            raise ValueError("replay needs exactly one of a recording or a synthetic spec")


@dataclass(frozen=True)
class SourceContext:
    """What sources need to know; built by the agent, which also owns when they run."""

    home: Path
    resolver: Callable[[], AppResolver]
    folders: tuple[Path, ...] = ()
    extensions: frozenset[str] = frozenset()
    replay: ReplayConfig | None = None
    platform: str = sys.platform
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def make_source(kind: SourceKind, ctx: SourceContext) -> Source:
    """A fresh, unstarted source of ``kind``. Platform modules load only when it starts."""
    if ctx.replay is not None:
        from agent.sources.replay import ReplaySource

        replay = ctx.replay
        recording, spec = replay.recording, replay.synthetic

        def items() -> Iterator[StreamItem]:
            if recording is not None:
                return read_recording(recording, kind)
            assert spec is not None
            return synthetic_stream(spec, kind)

        return ReplaySource(
            kind, items, resolver=ctx.resolver if kind is SourceKind.FOCUS else None, speed=replay.speed
        )
    if kind is SourceKind.KEYBOARD or kind is SourceKind.MOUSE:
        from agent.sources.pynput_input import PynputKeyboardSource, PynputMouseSource

        cls = PynputKeyboardSource if kind is SourceKind.KEYBOARD else PynputMouseSource
        return cls(ctx.platform, ctx.env)
    if kind is SourceKind.FILES:
        from agent.sources.files_watch import WatchdogFileSource

        return WatchdogFileSource(ctx.folders, ctx.home, ctx.extensions)
    return FocusSource(lambda: open_focus_backend(ctx.platform, ctx.env), ctx.resolver)


def open_focus_backend(platform: str, env: Mapping[str, str]) -> FocusBackend:
    """The focused-application backend for this operating system (raises SourceUnavailable)."""
    if platform == "darwin":
        from agent.sources.macos_focus import MacFocusBackend

        return MacFocusBackend()
    if platform == "win32":
        from agent.sources.windows_focus import WindowsFocusBackend

        return WindowsFocusBackend()
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        problem = session_problem(platform, env)
        if problem:
            raise SourceUnavailable(problem)
        from agent.sources.x11_focus import X11FocusBackend

        return X11FocusBackend(env.get("DISPLAY"))
    raise UnsupportedPlatform(f"focused-application tracking is not supported on {platform}")
