"""The agent's slow chores, on their own thread so capture never waits on them.

Every ``tick`` seconds: crypto-shred what is past the policy's retention, seal yesterday's records
into a held batch (one batch per UTC day), and, when this computer is enrolled with a store, run one
shipping sync. Each chore has its own vault connection (SQLite allows it; WAL keeps readers and the
capture writer apart). Failures are kept for ``consentry status`` and retried on the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from protocol.errors import ConsentryError, InvalidRecord
from protocol.timeutil import utc_midnight, utc_now
from vault.paths import Layout
from vault.policy import MachinePolicy

log = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 300.0


def run_chores(layout: Layout, policy: MachinePolicy, now: datetime) -> dict[str, object]:
    """One round of chores; returns what happened (for status and tests)."""
    from vault import batches, outbox
    from vault.shredding import apply_retention
    from vault.vault import Vault

    done: dict[str, object] = {}
    with Vault.open(layout, create=False) as vault:
        done["retention_shredded_keys"] = len(apply_retention(vault, policy, now))
        sealed = batches.seal_pending(vault, policy, now, up_to=utc_midnight(now))
        done["sealed_batch"] = sealed.batch_id if sealed else None
        if policy.store is not None and outbox.enrollment(vault) is not None:
            from agent.shipping import client_for, sync
            from kit.store_client import RetryPolicy

            # Few, short retries: the next tick retries anyway, and shutdown must not wait long.
            with client_for(vault, policy, retry=RetryPolicy(attempts=2, cap_seconds=2.0), timeout=10.0) as client:
                report = sync(vault, policy, now, client)
            done["shipped"] = report.shipped
            done["sync_errors"] = report.errors
    return done


class Housekeeper:
    """Runs ``run_chores`` every ``tick`` seconds until stopped."""

    def __init__(
        self,
        layout: Layout,
        policy: Callable[[], MachinePolicy | None],
        *,
        tick: float = DEFAULT_TICK_SECONDS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._layout = layout
        self._policy = policy
        self._tick = tick
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="consentry-housekeeping", daemon=True)
        self.last_result: dict[str, object] | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            policy = self._policy()
            if policy is None:  # no valid policy: nothing is done on the employee's behalf
                continue
            try:
                self.last_result = run_chores(self._layout, policy, self._clock())
                self.last_error = None
            except Exception as exc:  # e.g. "database is locked": report it, retry next tick, never die
                self.last_error = (
                    f"{type(exc).__name__}: {exc}" if isinstance(exc, ConsentryError) else type(exc).__name__
                )
                if isinstance(exc, InvalidRecord):  # sealing read a record that fails: say where to look
                    self.last_error += "; run: consentry doctor"
                log.warning("housekeeping failed: %s", type(exc).__name__)
