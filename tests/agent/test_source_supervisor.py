"""The source supervisor: sources start on the agent's word, a failed one is retried with growing
backoff while it is still wanted, and a source that loses its session from its thread is stopped.

Real sources throughout: the watchdog files source (which refuses to start without folders) and
the replay source."""

from __future__ import annotations

from pathlib import Path

from agent.app_tokens import AppResolver
from agent.capture import Capture
from agent.clock import ManualClock
from agent.source_supervisor import FIRST_SOURCE_RETRY, MAX_SOURCE_RETRY, SourceSupervisor
from agent.sources import SourceContext, SourceKind
from agent.sources.files_watch import NO_FOLDERS_REASON
from agent.sources.replay_stream import SyntheticSpec
from agent.sources.select import ReplayConfig
from vault.policy import MachinePolicy

RESOLVER = AppResolver.for_policy(MachinePolicy(), (), bytes(32))


class Contexts:
    """The agent's side: the context a starting source gets, and how many sources were made."""

    def __init__(self, home: Path, folders: tuple[Path, ...] = (), replay: ReplayConfig | None = None) -> None:
        self.home = home
        self.folders = folders
        self.replay = replay
        self.made = 0

    def __call__(self) -> SourceContext:
        self.made += 1
        return SourceContext(
            home=self.home,
            resolver=lambda: RESOLVER,
            folders=self.folders,
            extensions=frozenset({"py"}),
            replay=self.replay,
        )


def test_a_source_that_cannot_start_is_retried_with_growing_backoff(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_772_442_000.0)
    contexts = Contexts(tmp_path)
    supervisor = SourceSupervisor(Capture(60, clock), contexts, clock.monotonic)
    supervisor.want(SourceKind.FILES, True)
    assert supervisor.problems == {SourceKind.FILES: NO_FOLDERS_REASON} and supervisor.sources == {}
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == 1  # not retried before its backoff
    clock.advance(FIRST_SOURCE_RETRY)
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == 2
    clock.advance(FIRST_SOURCE_RETRY)  # the wait doubled after the second failure
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == 2
    clock.advance(FIRST_SOURCE_RETRY)
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == 3
    for _ in range(10):
        clock.advance(MAX_SOURCE_RETRY)
        supervisor.want(SourceKind.FILES, True)
    made = contexts.made
    clock.advance(MAX_SOURCE_RETRY - 1)
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == made  # the backoff stops growing at its ceiling
    clock.advance(1)
    supervisor.want(SourceKind.FILES, True)
    assert contexts.made == made + 1


def test_a_restart_starts_a_failed_source_at_once_and_forgets_its_failure(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_772_442_000.0)
    contexts = Contexts(tmp_path)
    supervisor = SourceSupervisor(Capture(60, clock), contexts, clock.monotonic)
    supervisor.want(SourceKind.FILES, True)
    assert SourceKind.FILES in supervisor.problems
    watched = tmp_path / "projects"
    watched.mkdir()
    contexts.folders = (watched,)  # the employee chose a folder
    supervisor.restart(SourceKind.FILES)
    assert supervisor.problems == {}
    try:
        supervisor.want(SourceKind.FILES, True)
        assert set(supervisor.sources) == {SourceKind.FILES} and supervisor.problems == {}
    finally:
        supervisor.stop_all()
    assert supervisor.sources == {}


def test_not_wanting_a_source_stops_it_and_clears_its_problem(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_772_442_000.0)
    supervisor = SourceSupervisor(Capture(60, clock), Contexts(tmp_path), clock.monotonic)
    supervisor.want(SourceKind.FILES, True)
    assert SourceKind.FILES in supervisor.problems
    supervisor.want(SourceKind.FILES, False)
    assert supervisor.problems == {} and supervisor.sources == {}


def test_a_source_that_loses_its_session_is_stopped_and_its_reason_kept(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_772_442_000.0)
    capture = Capture(60, clock)
    replay = ReplayConfig(synthetic=SyntheticSpec.parse("seconds=600,seed=1"))
    supervisor = SourceSupervisor(capture, Contexts(tmp_path, replay=replay), clock.monotonic)
    try:
        supervisor.want(SourceKind.KEYBOARD, True)
        supervisor.want(SourceKind.MOUSE, True)
        assert set(supervisor.sources) == {SourceKind.KEYBOARD, SourceKind.MOUSE}
        # What a source's thread does when its display closes under it.
        capture.buffers[SourceKind.MOUSE].unavailable("the input session went away")
        supervisor.collect_problems()
        assert set(supervisor.sources) == {SourceKind.KEYBOARD}
        assert supervisor.problems == {SourceKind.MOUSE: "the input session went away"}
        assert capture.buffers[SourceKind.MOUSE].problem is None  # taken, not reported twice
        supervisor.want(SourceKind.MOUSE, True)
        assert SourceKind.MOUSE not in supervisor.sources  # its retry is not due yet
        clock.advance(FIRST_SOURCE_RETRY)
        supervisor.want(SourceKind.MOUSE, True)
        assert set(supervisor.sources) == {SourceKind.KEYBOARD, SourceKind.MOUSE} and supervisor.problems == {}
    finally:
        supervisor.stop_all()
