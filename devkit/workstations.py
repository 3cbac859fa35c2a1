"""Simulated workstations that ship through the agent's own code, for soak benchmarks and tests.

A ``Workstation`` is a real vault (SQLite, its own KEK file) whose employee granted keyboard and
mouse. Each ``capture_and_seal`` writes two one-minute windows and seals what is pending into a
batch (``vault.batches.seal_pending``, the sealing chore's code); each ``sync`` is one pass of
``agent.shipping.sync``, the daemon's own outbox loop (submit manifests, poll decisions, witness the
ledger checkpoint, upload, verify the receipt, shred locally). Only the timing is the caller's.

``UploadTimer`` is an httpx transport that records every upload attempt, so the caller can measure
the time from a batch's first upload attempt to the attempt the store acknowledged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

# Outbox states after which a batch needs nothing more from the store.
DONE_STATES = ("shipped", "vetoed", "erased", "rejected", "withdrawn")


@dataclass
class UploadAttempt:
    batch_id: str
    started: float  # time.monotonic()
    seconds: float
    ok: bool


class UploadTimer(httpx.BaseTransport):
    """Real HTTP, noting each ``POST /v1/uploads`` attempt; lives as long as its workstation.

    Each store client that closes it gets a fresh connection pool next time, as the agent's own
    ``client_for`` does (a new client, so new connections, every shipping pass).
    """

    def __init__(self) -> None:
        self.attempts: list[UploadAttempt] = []
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/uploads":
            return self._inner.handle_request(request)
        batch_id = str(json.loads(request.content)["header"]["batch_id"])
        started = time.monotonic()
        ok = False
        try:
            response = self._inner.handle_request(request)
            response.read()
            ok = response.status_code == 200
            return response
        finally:
            self.attempts.append(UploadAttempt(batch_id, started, time.monotonic() - started, ok))

    def close(self) -> None:
        """The client is done: drop its connections, keep the notes."""
        self._inner.close()
        self._inner = httpx.HTTPTransport()

    def really_close(self) -> None:
        self._inner.close()


@dataclass
class Workstation:
    """One employee's vault, driven by the agent's sealing and shipping code. Use from one thread."""

    layout: Layout
    policy: MachinePolicy
    timer: UploadTimer = field(default_factory=UploadTimer)
    vault: Vault | None = None
    _minute: int = 0
    _receipts: dict[Category, str] = field(default_factory=dict)

    def open(self, now: datetime, capture_from: datetime) -> None:
        """Create the vault and grant keyboard and mouse at ``capture_from`` (windows follow from there)."""
        self.vault = Vault.open(self.layout)
        for category in (Category.KEYBOARD, Category.MOUSE):
            self._receipts[category] = grant(self.vault, category, capture_from, self.policy)
        self._minute = int(capture_from.timestamp()) // 60 * 60 + 60

    def enroll(self, token: str, now: datetime) -> str:
        from agent import shipping

        return shipping.enroll(self._vault, self.policy, token, now, transport=self.timer)

    @property
    def _vault(self) -> Vault:
        assert self.vault is not None, "open() the workstation first"
        return self.vault

    def capture_and_seal(self, now: datetime) -> str | None:
        """Two new one-minute windows, then seal everything pending; the new batch's id (None if none)."""
        from vault import batches

        start, self._minute = self._minute, self._minute + 60
        self._vault.write_windows(
            [
                keyboard_window(start, self._receipts[Category.KEYBOARD]),
                mouse_window(start, self._receipts[Category.MOUSE]),
            ]
        )
        info = batches.seal_pending(self._vault, self.policy, now)
        return None if info is None else info.batch_id

    def sync(self, now: datetime, **client_kwargs: Any) -> Any:
        """One pass of the agent's shipping loop (agent.shipping.sync) through this workstation's transport."""
        from agent import shipping

        client = shipping.client_for(self._vault, self.policy, transport=self.timer, **client_kwargs)
        with client:
            return shipping.sync(self._vault, self.policy, now, client)

    def batches(self) -> dict[str, str]:
        """Every batch this vault ever sealed -> its outbox state."""
        from vault import outbox

        return {b.batch_id: b.state for b in outbox.list_batches(self._vault)}

    def stuck(self) -> dict[str, str]:
        """Batches that still need the store -> their state and the last error the shipping code kept."""
        from vault import outbox

        return {
            b.batch_id: f"{b.state}: {b.last_error or '-'}"
            for b in outbox.list_batches(self._vault)
            if b.state not in DONE_STATES
        }

    def backlog(self) -> int:
        """Batches that still need the store (not yet shipped, rejected or otherwise closed)."""
        return sum(1 for state in self.batches().values() if state not in DONE_STATES)

    def close(self) -> None:
        if self.vault is not None:
            self.vault.close()
            self.vault = None
        self.timer.really_close()


def workstation(folder: Path, policy: MachinePolicy) -> Workstation:
    return Workstation(Layout(folder), policy)


def capture_start(now: datetime, hours: float = 40.0) -> datetime:
    """Where simulated capture begins: far enough back that a whole soak's windows end before ``now``."""
    return now - timedelta(hours=hours)
