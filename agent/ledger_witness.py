"""Asking the store whether this consent ledger is the latest it has witnessed, before capture resumes.

The signed head in ``keys/ledger-head`` catches a ledger whose last entries were deleted, but not a home
backup of the vault file *and* the head put back together: both are old, both agree. The store is the
one party outside the computer that saw the later ledger, because the agent shows it a signed checkpoint
of every ledger change (``POST /v1/checkpoints``, the same proof of extension batches use: entry digests,
never their content). So, wherever a store is configured and this computer enrolled:

- at start, and after any gap (the wall clock jumped: suspend, resume, a clock change; or the ledger
  moved backwards under the running agent), every grant is held until the store accepts a checkpoint of
  the ledger as it is here. An unreachable store keeps capture held, and the check is retried;
- the store refusing it as older than, or forked from, what it witnessed (``checkpoint_regressed``,
  ``checkpoint_forked``, ``checkpoint_not_extending``) means this vault is an old copy that may lack a
  withdrawal: every grant stays held until the employee puts the newer vault back or accepts the
  rollback (``consentry ledger accept-rollback``), which withdraws and erases everything;
- after every later ledger change the new checkpoint is shown to the store, without holding capture,
  so a withdrawal is witnessed as soon as the store can be reached.

Without a store (or before enrollment) nothing here applies: see docs/privacy/threat-model.md for what
a computer alone can and cannot detect.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple

from protocol.timeutil import iso, utc_now
from vault import outbox
from vault.ledger_rollback import STORE_WITNESSED_LATER
from vault.paths import Layout
from vault.policy import MachinePolicy

if TYPE_CHECKING:
    from kit.store_client import StoreClient
    from vault.vault import Vault

log = logging.getLogger(__name__)

WitnessState = Literal["not-configured", "checking", "confirmed", "contradicted", "unreachable", "accepted"]
# The store's answers that mean it witnessed a later or different ledger than this one.
CONTRADICTIONS = frozenset({"checkpoint_regressed", "checkpoint_forked", "checkpoint_not_extending"})
RETRY_SECONDS = (2.0, 5.0, 10.0, 30.0, 60.0)

CHECKING = (
    "checking with the store that this consent ledger is the latest it has seen (it may be an old copy "
    "put back from a backup); capture starts when the store answers"
)
CONTRADICTED = (
    "the store has seen a later state of your consent ledger than this computer holds: this vault is an "
    "older copy (a restored backup?) and may lack a withdrawal or an erasure. Capture is stopped. If you "
    "have the newer vault, put it back; otherwise run: consentry ledger accept-rollback (it withdraws every "
    "grant and erases what was collected here; then grant again)"
)
ACCEPTED = (
    "you accepted that this vault is older than what the store saw (consentry ledger accept-rollback); "
    "grants made since then count, but the store can no longer confirm this ledger"
)


class Verdict(NamedTuple):
    """What the store last said about this ledger."""

    state: WitnessState
    message: str | None = None
    checked_at: datetime | None = None
    seq: int | None = None

    @property
    def holds_capture(self) -> bool:
        return self.state in ("checking", "contradicted", "unreachable")


NOT_CONFIGURED = Verdict("not-configured")


def store_configured(vault: Vault, policy: MachinePolicy | None) -> bool:
    return policy is not None and policy.store is not None and outbox.enrollment(vault) is not None


def rollback_accepted(vault: Vault) -> bool:
    """Whether the employee already accepted what the store said (the acceptance entry is in the ledger)."""
    return any(
        e.body.get("problem") == STORE_WITNESSED_LATER for e in vault.ledger.entries(("ledger-rollback-accepted",))
    )


def ask_store(vault: Vault, policy: MachinePolicy, now: datetime, client: StoreClient | None = None) -> Verdict:
    """Show the store a checkpoint of the ledger as it is here; its answer is the verdict.

    Accepted: the store witnessed nothing later (and now witnesses this). Refused as older or forked:
    ``contradicted`` (or ``accepted`` once the employee accepted it). Anything else: ``unreachable``.
    """
    from agent import shipping
    from protocol.checkpoint import sign_checkpoint
    from protocol.store_errors import Conflict
    from vault.ledger import Checkpoint

    if not store_configured(vault, policy):
        return NOT_CONFIGURED
    if not vault.ledger_head_state().ok:  # capture is stopped by the local check already; vouch for nothing
        return Verdict("checking", "not asked: this ledger does not match its own signed head", now)
    seq, head_hash = vault.ledger.head()
    signed = sign_checkpoint(vault.device_key, seq, head_hash, created=int(now.timestamp()))
    checkpoint = Checkpoint(
        seq=signed.seq,
        head_hash=signed.head_hash,
        device_kid=signed.device_kid,
        at=signed.at,
        signature=signed.signature,
    )
    try:
        if client is None:
            from kit.store_client import RetryPolicy

            with shipping.client_for(vault, policy, retry=RetryPolicy(attempts=1), timeout=10.0) as own:
                shipping.witness_checkpoint(vault, own, checkpoint, now)
        else:
            shipping.witness_checkpoint(vault, client, checkpoint, now)
    except Conflict as exc:
        if exc.code not in CONTRADICTIONS:
            return Verdict("unreachable", _waiting(f"the store refused the check: {exc.code}"), now)
        if rollback_accepted(vault):
            return Verdict("accepted", ACCEPTED, now)
        return Verdict("contradicted", CONTRADICTED, now)
    except Exception as exc:  # network, TLS, the store down: capture waits, the check is retried
        return Verdict("unreachable", _waiting(f"it could not be reached: {type(exc).__name__}"), now)
    return Verdict("confirmed", None, now, seq)


def _waiting(why: str) -> str:
    return f"waiting for the store to confirm that this consent ledger is the latest it has seen ({why}); " \
        "capture starts when it answers, and the check is retried"  # fmt: skip


class LedgerWitness:
    """Runs ``ask_store`` on its own thread (the network never blocks capture) when asked to."""

    def __init__(
        self,
        layout: Layout,
        policy: Callable[[], MachinePolicy | None],
        on_change: Callable[[], None],
        *,
        configured: bool,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._layout = layout
        self._policy = policy
        self._on_change = on_change
        self._clock = clock
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="consentry-ledger-witness", daemon=True)
        # Held from the first moment: nothing is captured before the store answered (when there is one).
        self.verdict = Verdict("checking", CHECKING) if configured else NOT_CONFIGURED
        self._hold = configured  # a start or a gap: capture waits for a confirmation

    def start(self) -> None:
        self._thread.start()
        self._wanted.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def gap(self, why: str) -> None:
        """Something may have happened unseen: hold capture until the store confirms the ledger again."""
        with self._lock:
            self._hold = True
            if self.verdict.state != "not-configured":
                log.info("ledger check with the store: %s; capture held until it answers", why)
                self._set(Verdict("checking", CHECKING))
        self._wanted.set()

    def changed(self) -> None:
        """The ledger moved forward: show the store the new checkpoint (capture is not held for it)."""
        self._wanted.set()

    def _set(self, verdict: Verdict) -> None:
        previous = self.verdict
        self.verdict = verdict
        if (previous.state, previous.message) != (verdict.state, verdict.message):
            if verdict.state != previous.state:
                log.info("ledger check with the store: %s", verdict.state)
            self._on_change()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)] if failures else None
            self._wanted.wait(wait)
            self._wanted.clear()
            if self._stop.is_set():
                return
            verdict = self._ask()
            with self._lock:
                if (
                    verdict.state == "unreachable"
                    and not self._hold
                    and self.verdict.state in ("confirmed", "accepted")
                ):
                    failures += 1  # the last confirmation stands (the ledger only moved forward); retry later
                    continue
                failures = failures + 1 if verdict.state in ("unreachable", "checking") else 0
                if verdict.state in ("confirmed", "accepted", "not-configured"):
                    self._hold = False
                self._set(verdict)

    def _ask(self) -> Verdict:
        from vault.vault import Vault

        policy = self._policy()
        if policy is None:  # an invalid policy stops all capture anyway; ask again when it is valid
            return Verdict("checking", CHECKING, self._clock())
        try:
            with Vault.open(self._layout, create=False) as vault:
                return ask_store(vault, policy, self._clock())
        except Exception as exc:  # the vault busy or unreadable for a moment: retried like an outage
            return Verdict("unreachable", _waiting(f"the vault could not be read: {type(exc).__name__}"), self._clock())


def describe(verdict: Verdict) -> str:
    """One line for ``consentry status``."""
    when = f" (checked {iso(verdict.checked_at)})" if verdict.checked_at else ""
    if verdict.state == "confirmed":
        return f"your consent ledger is the latest the store has seen{when}"
    return f"{verdict.state.upper()}: {verdict.message}{when}"
