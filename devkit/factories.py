"""Small builders of real window records and granted vaults for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from protocol.categories import Category
from protocol.windows import AppFocus, AppsWindow, FileEventCount, FilesWindow, KeyboardWindow, MouseWindow
from vault import consent_ops
from vault.consent import ConsentSnapshot
from vault.policy import MachinePolicy
from vault.vault import Vault


def keyboard_window(start: int, receipt_id: str, letters: int = 10) -> KeyboardWindow:
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


def mouse_window(start: int, receipt_id: str) -> MouseWindow:
    return MouseWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        clicks={"left": 3, "right": 1},
        scroll_steps=4,
        moves=120,
        distance_px=3400.5,
        idle_seconds=12.0,
    )


def apps_window(start: int, receipt_id: str) -> AppsWindow:
    return AppsWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        switches=2,
        focus=(AppFocus(app="cat:ide", seconds=40.0), AppFocus(app="anon:0123456789abcdef", seconds=20.0)),
    )


def files_window(start: int, receipt_id: str) -> FilesWindow:
    return FilesWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        events=(FileEventCount(root_class="projects", depth=2, ext="py", kind="modified", count=3),),
    )


def grant(vault: Vault, category: Category, now: datetime | None = None, policy: MachinePolicy | None = None) -> str:
    receipt, _ = consent_ops.grant(
        vault,
        policy or MachinePolicy(),
        category,
        method="api",
        confirmation="yes-flag",
        now=now or datetime.now(UTC),
    )
    return receipt.receipt_id


def may_capture(snapshot: ConsentSnapshot, category: Category, now: datetime) -> bool:
    """What the tests ask of a snapshot: granted and not paused (the agent's gate adds policy and storage)."""
    return snapshot.categories[category].state == "granted" and not snapshot.is_paused(now)


def receipt_for(snapshot: ConsentSnapshot, category: Category) -> str | None:
    """The receipt id of ``category``'s grant in force, or None."""
    entry = snapshot.categories[category]
    return entry.receipt_id if entry.state == "granted" else None
