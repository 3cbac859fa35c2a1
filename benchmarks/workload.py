"""Window records and granted vaults for the benchmarks (product code only; benchmarks never import tests/)."""

from __future__ import annotations

from datetime import UTC, datetime

from protocol.categories import Category
from protocol.windows import KeyboardWindow
from vault import consent_ops
from vault.policy import MachinePolicy
from vault.vault import Vault


def keyboard_window(start: int, receipt_id: str, letters: int = 10) -> KeyboardWindow:
    """A realistic one-minute keyboard window (the shape the aggregator writes)."""
    return KeyboardWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        key_counts={"letter": letters, "space": 2, "editing": 1},
        iki_histogram=(0, 1, 5, 3, 2, 1, 0, 0, 1),
        bursts=2,
        longest_burst=7,
        pauses=1,
        correction_ratio=1 / 13,
    )


def grant(vault: Vault, category: Category, now: datetime | None = None) -> str:
    """Grant ``category`` in ``vault`` as the CLI would, and return the receipt id."""
    receipt, _ = consent_ops.grant(
        vault, MachinePolicy(), category, method="api", confirmation="yes-flag", now=now or datetime.now(UTC)
    )
    return receipt.receipt_id
