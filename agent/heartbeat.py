"""The agent's fleet duties: enroll with IT's enrollment secret on first start, then a heartbeat on a fixed schedule.

IT delivers the enrollment secret with the machine policy, as a file beside it (``enroll-secret`` next to
``policy.toml``). On first start an agent that is not enrolled yet enrolls its own device key with it
(the one-time token path, ``consentry enroll --token-file``, works as before). Then every
``HEARTBEAT_SECONDS`` it sends a heartbeat (protocol.fleet): agent version, policy digest, error class,
delivery backlog, clock skew and ledger-head state, padded to one fixed length. It is sent on the same
schedule whether or not the employee granted anything, and names no category, grant, pause or erasure.

What the store answered last is kept in ``fleet-state.json`` in the agent's home, so ``consentry status``
can say in words that IT retired this computer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.fleet_state import read_state, write_state
from protocol.fleet import (
    HEARTBEAT_SECONDS,
    NO_POLICY_DIGEST,
    ErrorClass,
    Heartbeat,
    LedgerHead,
    encode_heartbeat,
)
from protocol.timeutil import iso, utc_now
from vault.paths import Layout
from vault.policy import MachinePolicy

log = logging.getLogger(__name__)

SECRET_FILE_NAME = "enroll-secret"
_MAX_SECRET_FILE_BYTES = 4096


def agent_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("consentry")
    except PackageNotFoundError:
        return "unknown"


def secret_path(policy_path: Path) -> Path:
    """Where IT's enrollment secret sits: beside the machine policy."""
    return policy_path.with_name(SECRET_FILE_NAME)


def read_secret(path: Path) -> str | None:
    """The enrollment secret in ``path``, or None if there is none (never logged or printed)."""
    import re

    from protocol.fleet import SECRET_PATTERN

    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_SECRET_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    try:
        secret = data.decode("ascii").strip()
    except UnicodeDecodeError:
        secret = ""
    if len(data) > _MAX_SECRET_FILE_BYTES or not re.fullmatch(SECRET_PATTERN, secret):
        raise ValueError(
            f"{path} does not hold an enrollment secret as `consentry store enroll-secret create` prints it"
        )
    return secret


@dataclass(frozen=True)
class Health:
    """What the heartbeat reports, gathered by the agent (daemon) from its own state."""

    policy_digest: str = NO_POLICY_DIGEST
    error_class: ErrorClass = "none"
    ledger_head: LedgerHead = "unknown"


_HEAD_STATES: dict[str, LedgerHead] = {"ok": "ok", "unanchored": "unanchored"}
_CAPTURE_PROBLEMS = frozenset({"unavailable", "storage_error", "settings_error"})


def agent_health(
    policy: MachinePolicy | None,
    head_status: str,
    storage_error: str | None,
    housekeeping_error: str | None,
    capture_states: list[str],
) -> Health:
    """The heartbeat's view of the running agent; the daemon hands its own state in.

    Most serious first: an invalid policy (capture stopped everywhere), a ledger that does not match its
    signed head, then problems that can only happen where something was granted (these the store shows
    only as fleet aggregates, never per device).
    """
    ledger: LedgerHead = _HEAD_STATES.get(head_status, "mismatch")
    error: ErrorClass = "none"
    if policy is None:
        error = "policy_invalid"
    elif ledger == "mismatch":
        error = "ledger_mismatch"
    elif storage_error:
        error = "storage_failed"
    elif any(state in _CAPTURE_PROBLEMS for state in capture_states):
        error = "capture_failed"
    elif housekeeping_error:
        error = "housekeeping_failed"
    return Health(policy.digest() if policy is not None else NO_POLICY_DIGEST, error, ledger)


def build_heartbeat(seq: int, now: int, health: Health, queue_depth: int, clock_skew: int) -> Heartbeat:
    """A heartbeat padded to its fixed length (encode_heartbeat); the same shape for every device."""
    bare = Heartbeat(
        seq=seq,
        sent_at=now,
        agent_version=agent_version()[:32],
        policy_digest=health.policy_digest,
        error_class=health.error_class,
        queue_depth=min(queue_depth, 999_999),
        clock_skew_seconds=clock_skew,
        ledger_head=health.ledger_head,
    )
    return Heartbeat.model_validate_json(encode_heartbeat(bare))


def delivery_backlog(vault: Any) -> int:
    """Batches and erasure requests whose last delivery to the store failed (the heartbeat's queue depth)."""
    from vault import outbox

    stuck = sum(
        1 for row in outbox.list_batches(vault) if row.last_error and row.state not in ("shipped", "vetoed", "erased")
    )
    return stuck + outbox.pending_erasure_count(vault)


class Heartbeater:
    """Enrolls with the secret if needed, then sends a heartbeat every ``interval`` seconds until stopped."""

    def __init__(
        self,
        layout: Layout,
        policy_path: Path,
        policy: Callable[[], MachinePolicy | None],
        health: Callable[[], Health],
        *,
        interval: float = HEARTBEAT_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._layout = layout
        self._policy_path = policy_path
        self._policy = policy
        self._health = health
        self._interval = interval
        self._clock = clock
        self._client_kwargs = client_kwargs or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="consentry-heartbeat", daemon=True)
        self._seq = 0
        self._skew = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        # The first beat goes out at once (first start enrolls then), the rest on the fixed schedule.
        while True:
            try:
                self.beat()
                self.last_error = None
            except Exception as exc:  # a network or store problem: report it, try again next time, never die
                self.last_error = type(exc).__name__
                log.warning("heartbeat failed: %s", type(exc).__name__)
            if self._stop.wait(self._interval):
                return

    def beat(self) -> str:
        """One round: enroll if needed and possible, then send one heartbeat; returns what happened."""
        from agent.fleet_enroll import enroll_with_secret
        from agent.shipping import client_for
        from kit.store_client import RetryPolicy
        from protocol.store_errors import StoreError
        from vault import outbox
        from vault.vault import Vault

        policy = self._policy()
        if policy is None or policy.store is None:
            return "no-store"
        now = self._clock()
        state = read_state(self._layout)
        with Vault.open(self._layout, create=False) as vault:
            if outbox.enrollment(vault) is None:
                secret = read_secret(secret_path(self._policy_path))
                if secret is None:
                    return "not-enrolled"
                kid = enroll_with_secret(vault, policy, secret, now, **self._client_kwargs)
                write_state(self._layout, {**state, "enrolled_by_secret_at": iso(now), "device_kid": kid})
                state = read_state(self._layout)
            self._seq += 1
            heartbeat = build_heartbeat(
                self._seq, int(now.timestamp()), self._health(), delivery_backlog(vault), self._skew
            )
            kwargs = {"retry": RetryPolicy(attempts=2, cap_seconds=2.0), "timeout": 10.0, **self._client_kwargs}
            try:
                with client_for(vault, policy, **kwargs) as client:
                    ack = client.heartbeat(heartbeat)
            except StoreError as exc:
                if exc.code == "device_retired":
                    write_state(self._layout, {**state, "retired": True, "retired_message": exc.message})
                raise
        self._skew = int(now.timestamp()) - ack.store_time
        write_state(self._layout, {**state, "retired": False, "last_heartbeat_at": iso(now)})
        return "sent"
