"""The capture agent: one loop that owns consent, sources, windows, flushing and status.

Every ~0.25 s (or at once when the control socket or the policy watcher wakes it) the loop:
serves control requests; once a second re-reads the ledger head, the policy file and the
employee's settings (``SettingsWatcher``); decides each category's state through the consent gate;
has the ``SourceSupervisor`` start and stop sources to match; moves buffered events into windows;
flushes finished windows in one vault transaction; and writes status.json when something changed.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from agent.app_tokens import AppResolver, token_key
from agent.capture import Capture
from agent.clock import CaptureClock, SystemCaptureClock
from agent.control_protocol import ControlResponse
from agent.control_server import PendingRequest
from agent.gate import DROP_STATES, OPEN_STATES, Circumstances, category_status, eligible
from agent.heartbeat import Health, Heartbeater, agent_health
from agent.home_guard import HomeGuard
from agent.housekeeping import Housekeeper
from agent.ledger_witness import LedgerWitness, Verdict, store_configured
from agent.policy_watch import PolicyWatcher, Stamp, policy_stamp
from agent.recorder import Recorder
from agent.settings_watch import SettingsWatcher
from agent.source_supervisor import SourceSupervisor
from agent.sources import SourceContext, SourceKind
from agent.sources.base import SOURCE_FOR_CATEGORY
from agent.sources.select import ReplayConfig
from agent.status import AgentStatus, CaptureState, CategoryStatus, LedgerCheck, PolicyStatus, write_status
from protocol.categories import ALL_CATEGORIES, Category
from protocol.errors import ConsentryError, PolicyError
from protocol.timeutil import utc_midnight
from vault import consent_ops
from vault.consent import FOREVER, SCOPE_SECRET_NAME, ConsentSnapshot, withheld
from vault.ledger_head import HeadState
from vault.paths import Layout
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault

log = logging.getLogger("consentry.agent")

TICK_SECONDS = 0.25
HOUSEKEEPING_SECONDS = 1.0
STATUS_HEARTBEAT_SECONDS = 5.0
# The wall clock moving this much more (or less) than the monotonic clock is a gap (suspend, resume, a
# clock change): the ledger is checked with the store again before capture goes on.
GAP_SECONDS = 60.0


class Agent:
    def __init__(
        self,
        layout: Layout,
        vault: Vault,
        policy_path: Path,
        *,
        clock: CaptureClock | None = None,
        replay: ReplayConfig | None = None,
        platform: str = sys.platform,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.layout = layout
        self.vault = vault
        self.policy_path = policy_path
        self.clock = clock or SystemCaptureClock()
        self.replay = replay
        self.platform = platform
        self.env = dict(os.environ) if env is None else dict(env)
        self.requests: queue.Queue[PendingRequest] = queue.Queue()
        self.wake_event = threading.Event()
        self.stop_event = threading.Event()
        self._policy_dirty = threading.Event()

        self.started_at = self._now()
        self.policy = MachinePolicy()
        self.policy_error: str | None = None
        self._policy_stamp: Stamp = None
        self._load_policy()
        self.capture = Capture(self.policy.aggregation_window_seconds, self.clock)
        self.recorder = Recorder(vault.write_windows, self.clock.monotonic, self._now)
        self._secret = token_key(vault)  # v2 app tokens for a new vault; an existing one keeps its version
        self.settings = SettingsWatcher(layout, vault.local_secret(SCOPE_SECRET_NAME))
        self.resolver = self._build_resolver()
        self._witness = LedgerWitness(
            layout,
            lambda: self.policy if self.policy_error is None else None,
            self.wake,
            configured=store_configured(vault, self.policy),
            clock=self._now,
        )
        self._applied_verdict: Verdict = self._witness.verdict
        self._head_state: HeadState = vault.ledger_head_state()
        self.snapshot: ConsentSnapshot = self._consent()
        self._head = vault.ledger_head()
        self._clock_offset = self.clock.time() - self.clock.monotonic()

        self.supervisor = SourceSupervisor(self.capture, self._source_context, self.clock.monotonic)
        self.statuses: dict[Category, CategoryStatus] = {}
        self._last_status: AgentStatus | None = None
        self._status_written_at = 0.0
        self._day_start = utc_midnight(self._now())
        self._written_before_today = vault.count_windows(since=self._day_start)
        self._written_at_day_start = 0
        self._watcher = PolicyWatcher(policy_path, self._policy_touched)
        # Retention, daily sealing and store sync: slow, sometimes networked, so never on this loop.
        self._chores = Housekeeper(layout, lambda: self.policy if self.policy_error is None else None)
        # Fleet enrollment with IT's secret and the fixed-schedule heartbeat (agent.heartbeat).
        self._heartbeat = Heartbeater(
            layout, policy_path, lambda: self.policy if self.policy_error is None else None, self._health
        )
        self._home = HomeGuard(layout)
        self.stopped_because: str | None = None  # set when the agent stopped by itself (``_stop_for_lost``)

    # -- small helpers ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def wake(self) -> None:
        self.wake_event.set()

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _policy_touched(self) -> None:
        self._policy_dirty.set()
        self.wake_event.set()

    # -- configuration ---------------------------------------------------------------------------

    def _load_policy(self) -> bool:
        """(Re)read the machine policy; returns True when what the agent runs under changed."""
        self._policy_stamp = policy_stamp(self.policy_path)
        try:
            policy = load_policy(self.policy_path)
        except PolicyError as exc:
            changed = self.policy_error != str(exc)
            if changed:
                log.error("the machine policy is invalid: all capture stops until it is fixed")
            self.policy_error = str(exc)
            return changed
        changed = self.policy_error is not None or policy != self.policy
        if self.policy_error is not None:
            log.info("the machine policy is valid again")
        self.policy_error = None
        self.policy = policy
        return changed

    def _build_resolver(self) -> AppResolver:
        self.settings.reload_exclusions()
        return AppResolver.for_policy(self.policy, self.settings.excluded, self._secret)

    def _source_context(self) -> SourceContext:
        return SourceContext(
            home=Path(self.env.get("HOME", str(Path.home()))),
            resolver=lambda: self.resolver,
            folders=self.settings.folders,
            extensions=frozenset(self.policy.file_extensions),
            replay=self.replay,
            platform=self.platform,
            env=self.env,
        )

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        if self.policy_error is None:
            self._note_policy()
        self._warn_policy()
        self.settings.reload_folders()
        self._watcher.start()
        self._chores.start()
        self._witness.start()
        self._heartbeat.start()
        log.info("agent running (pid %d)", os.getpid())
        next_housekeeping = 0.0
        try:
            while not self.stop_event.is_set():
                try:
                    self._serve_requests()
                    mono = self.clock.monotonic()
                    if self._policy_dirty.is_set() or mono >= next_housekeeping:
                        next_housekeeping = mono + HOUSEKEEPING_SECONDS
                        self._housekeeping()
                    self._step()
                except Exception as exc:  # a bug must not end capture bookkeeping; the tick paces retries
                    log.error("agent loop error: %s", type(exc).__name__)
                self.wake_event.wait(TICK_SECONDS)
                self.wake_event.clear()
        finally:
            self._shutdown()

    def _step(self) -> None:
        if self.stopped_because is not None:
            return  # nothing more is captured or written
        self.supervisor.collect_problems()
        self._reconcile()
        self.recorder.add(self.capture.pump())
        if self.recorder.due():
            was_error = self.recorder.error
            self.recorder.flush()
            if (was_error is None) != (self.recorder.error is None):
                self._reconcile()
        self._write_status()

    def _housekeeping(self) -> None:
        self._policy_dirty.clear()
        lost = self._home.lost()
        if lost is not None:
            self._stop_for_lost(lost)
            return
        if policy_stamp(self.policy_path) != self._policy_stamp:
            self._apply_policy()
        if self.settings.exclusions_changed():
            self.resolver = self._build_resolver()
        if self.settings.folders_changed():
            self._reload_folders()
        self._check_gap()
        self._refresh_consent(force=self._witness.verdict != self._applied_verdict or self._catch_up_head())
        self._settle_pause()
        midnight = utc_midnight(self._now())
        if midnight != self._day_start:
            self._day_start = midnight
            self._written_before_today = 0
            self._written_at_day_start = self.recorder.written

    def _stop_for_lost(self, lost: str) -> None:
        """The vault (or the lock) at our path is gone or is another file: stop capture at once, drop what is
        held, write nothing more anywhere (not even status.json, which would recreate the folder)."""
        self.stopped_because = (
            f"{lost} was removed or replaced while the agent ran: capture stopped, and nothing more was "
            "written. Start the agent again to use the vault that is there now (a new, empty one if the "
            "folder was removed: nothing is granted in it)"
        )
        log.error("%s", self.stopped_because)
        self.supervisor.stop_all()
        for category in ALL_CATEGORIES:
            self.capture.drop(category)
            self.recorder.discard(category.value)
        self.request_stop()

    def _apply_policy(self) -> None:
        old_size = self.policy.aggregation_window_seconds
        old_extensions = self.policy.file_extensions
        if not self._load_policy():
            return
        if self.policy_error is not None:
            self._reconcile()  # everything stops and drops before anything else happens
            return
        self._note_policy()
        self._warn_policy()
        self.resolver = self._build_resolver()
        self._witness.changed()  # a store added or removed: ask (or stop asking)
        self._refresh_consent(force=True)
        if self.policy.aggregation_window_seconds != old_size:
            self.recorder.add(self.capture.resize(self.policy.aggregation_window_seconds))
        if self.policy.file_extensions != old_extensions:
            self.supervisor.restart(SourceKind.FILES)
        self._reconcile()

    def _warn_policy(self) -> None:
        for warning in self.policy.warnings():  # test/demo-only settings: said at every start and change
            log.warning("machine policy: %s", warning)

    def _note_policy(self) -> None:
        try:
            consent_ops.record_policy(self.vault, self.policy, self._now())
        except (sqlite3.Error, OSError, ConsentryError) as exc:
            log.warning("could not note the policy in the ledger (%s)", type(exc).__name__)

    def _reload_folders(self) -> None:
        if self.settings.reload_folders():
            self.supervisor.restart(SourceKind.FILES)

    def _refresh_consent(self, force: bool = False) -> bool:
        """Re-read consent from the ledger; False (keeping the last state) when it could not be read."""
        try:
            head = self.vault.ledger_head()
            if force or head != self._head:
                if head[0] < self._head[0] or (head[0] == self._head[0] and head != self._head):
                    self._witness.gap("the consent ledger moved backwards")  # an old copy put back under us
                elif head != self._head:
                    self._witness.changed()  # the store witnesses every change, a withdrawal first of all
                if head != self._head:
                    self.recorder.retry_now()  # e.g. doctor --repair removed what made writes fail
                self._head_state = self.vault.ledger_head_state()
                self.snapshot = self._consent()
                self._head = head
        except sqlite3.Error as exc:  # busy or unreadable for a moment: keep the last state, retry in 1 s
            log.warning("could not re-read the consent ledger (%s)", type(exc).__name__)
            return False
        return True

    def _consent(self) -> ConsentSnapshot:
        """The ledger's consent, held back while the store has not confirmed the ledger (agent/ledger_witness.py)."""
        verdict = self._applied_verdict = self._witness.verdict
        snapshot = self.vault.consent(self.policy)
        return withheld(snapshot, verdict.message or "") if verdict.holds_capture else snapshot

    def _check_gap(self) -> None:
        offset = self.clock.time() - self.clock.monotonic()
        if abs(offset - self._clock_offset) > GAP_SECONDS:
            self._witness.gap("the clock jumped (suspend or resume?)")
        self._clock_offset = offset

    def _catch_up_head(self) -> bool:
        """A head that lags a withdrawal is signed as soon as it can be written again."""
        if not self._head_state.lagging:
            return False
        try:
            caught_up = self.vault.catch_up_head()
        except (sqlite3.Error, OSError, ConsentryError):
            return False
        if caught_up:
            log.info("the signed ledger head caught up with the withdrawals it lagged")
        return caught_up

    def _settle_pause(self) -> None:
        until = self.snapshot.paused_until
        if until is not None and until != FOREVER and self._now() >= until:
            try:
                consent_ops.settle_expired_pause(self.vault, self.policy, self._now())
                log.info("the timed pause ended; capture resumes")
            except (sqlite3.Error, OSError, ConsentryError) as exc:
                log.warning("could not record the end of the pause (%s)", type(exc).__name__)
            self._refresh_consent()

    # -- control requests ------------------------------------------------------------------------

    def _serve_requests(self) -> None:
        while True:
            try:
                pending = self.requests.get_nowait()
            except queue.Empty:
                return
            try:
                pending.answer(self._answer(pending))
            except ValueError as exc:  # our own refusal, e.g. a pause that ends in the past
                pending.answer(ControlResponse(ok=False, error=str(exc)))
            except (sqlite3.Error, OSError, ConsentryError) as exc:
                pending.answer(ControlResponse(ok=False, error=f"{type(exc).__name__}: the request failed"))
            except Exception as exc:  # never leave a client waiting: answer, then let the loop log it
                pending.answer(ControlResponse(ok=False, error=f"{type(exc).__name__}: the request failed"))
                raise

    def _answer(self, pending: PendingRequest) -> ControlResponse:
        request = pending.request
        # The tray asks for the status every 2 s: only requests that change something are worth a line.
        log.log(logging.DEBUG if request.op == "status" else logging.INFO, "control: %s", request.op)
        if request.op == "pause":
            consent_ops.pause(self.vault, until=request.until, method="cli", now=self._now())
        elif request.op == "resume":
            consent_ops.resume(self.vault, self.policy, reason="employee", now=self._now())
        if request.op != "status":
            self.resolver = self._build_resolver()
            self._reload_folders()
            if not self._refresh_consent(force=True):
                # Never confirm a change the agent has not applied: the CLI then says so.
                return ControlResponse(ok=False, error="the consent ledger could not be read; retrying")
            self._step()
        return ControlResponse(ok=True, ledger_seq=self._head[0], status=self._build_status().model_dump(mode="json"))

    # -- the consent gate and sources ------------------------------------------------------------

    def _circumstances(self) -> Circumstances:
        return Circumstances(
            now=self._now(),
            policy_error=self.policy_error,
            paused_until=self.snapshot.paused_until,
            storage_error=self.recorder.error,
            excluded_focused=self.capture.excluded,
            settings_error=self.settings.excluded_error,
            scope_error=self.settings.files_scope_error(self.snapshot.categories[Category.FILES]),
        )

    def _reconcile(self) -> None:
        c = self._circumstances()
        consents = self.snapshot.categories
        want = self.supervisor.want
        problems = self.supervisor.problems
        want(SourceKind.FOCUS, any(eligible(consents[cat], c) for cat in ALL_CATEGORIES))
        c = self._circumstances()  # the focus source may have just reported an excluded app
        focus_problem = problems.get(SourceKind.FOCUS)
        for category in ALL_CATEGORIES:
            kind = SOURCE_FOR_CATEGORY[category]
            own_problem = problems.get(kind) if kind is not SourceKind.FOCUS else None
            # Without focus tracking excluded applications cannot be honoured, so nothing runs.
            status = category_status(consents[category], c, own_problem or focus_problem)
            # A source that failed keeps being retried (with backoff) while it is otherwise allowed.
            run = status.state is CaptureState.CAPTURING or (
                status.state is CaptureState.UNAVAILABLE and own_problem is not None and focus_problem is None
            )
            if kind is not SourceKind.FOCUS and not run:
                want(kind, False)
            self._gate_window(category, status)
            if kind is not SourceKind.FOCUS and run:
                want(kind, True)
                status = category_status(consents[category], c, problems.get(kind) or focus_problem)
            previous = self.statuses.get(category)
            if previous is None or previous.state != status.state:
                log.info("%s: %s", category.value, status.state.value)
            self.statuses[category] = status

    def _gate_window(self, category: Category, status: CategoryStatus) -> None:
        if status.state in OPEN_STATES and status.receipt_id is not None:
            if self.capture.receipt_id(category) != status.receipt_id:
                if self.capture.is_open(category):  # a different grant now: the old one ended in between
                    self.capture.drop(category)
                    self.recorder.discard(category.value)
                self.capture.begin(category, status.receipt_id)
            return
        if status.state in DROP_STATES:
            dropped = self.capture.drop(category)
            discarded = self.recorder.discard(category.value)
            if dropped or discarded:
                log.info("%s: consent ended; dropped unwritten data", category.value)
        elif self.capture.is_open(category):
            self.recorder.add(self.capture.cut(category))

    # -- status and shutdown ---------------------------------------------------------------------

    def _build_status(self, running: bool = True) -> AgentStatus:
        return AgentStatus(
            agent_state="running" if running else "stopped",
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=self._now(),
            categories=dict(self.statuses),
            policy=PolicyStatus(state="ok")
            if self.policy_error is None
            else PolicyStatus(state="invalid", message=self.policy_error),
            paused_until=self.snapshot.paused_until,
            last_flush=self.recorder.last_flush,
            records_written_today=self._written_before_today + self.recorder.written - self._written_at_day_start,
            dropped_events=self.capture.dropped,
            storage_error=self.recorder.error,
            housekeeping_error=self._chores.last_error,
            ledger_head=LedgerCheck(
                state=self._head_state.status,
                message=None if self._head_state.status in ("ok", "unanchored") else self._head_state.explain(),
            ),
            ledger_witness=LedgerCheck(  # the verdict the categories were decided under, so the two agree
                state=self._applied_verdict.state,
                message=self._applied_verdict.message,
                checked_at=self._applied_verdict.checked_at,
            ),
        )

    def _health(self) -> Health:
        return agent_health(
            self.policy if self.policy_error is None else None,
            self._head_state.status,
            self.recorder.error,
            self._chores.last_error,
            [str(s.state) for s in list(self.statuses.values())],
        )

    def _write_status(self, running: bool = True, force: bool = False) -> None:
        if not self.statuses:
            return
        status = self._build_status(running)
        mono = self.clock.monotonic()
        if (
            not force
            and status.same_state(self._last_status)
            and mono - self._status_written_at < STATUS_HEARTBEAT_SECONDS
        ):
            return
        try:
            write_status(self.layout.agent_status, status)
        except OSError as exc:
            log.warning("cannot write status.json (%s)", exc.strerror or type(exc).__name__)
            return
        self._last_status = status
        self._status_written_at = mono

    def _shutdown(self) -> None:
        """Stop every source, close every window at this instant and flush what is held."""
        log.info("agent stopping")
        self._watcher.stop()
        self._chores.stop()
        self._witness.stop()
        self._heartbeat.stop()
        self.supervisor.stop_all()
        if self.stopped_because is not None:
            log.info("agent stopped")
            return
        for category in ALL_CATEGORIES:
            if self.capture.is_open(category):
                self.recorder.add(self.capture.cut(category))
        if self.recorder.pending and not self.recorder.flush():
            log.error(
                "could not flush %d window(s) at shutdown: %s",
                len(self.recorder.pending),
                self.recorder.error,
            )
        self._write_status(running=False, force=True)
        log.info("agent stopped")
