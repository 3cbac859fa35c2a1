"""Erasing the employee's data on this computer (``consentry erase``): by category, by period, or all.

Erasure destroys data keys (crypto-shredding, ``vault.shredding``) and is recorded in the ledger.
Erasing everything also withdraws every grant, asks the store to erase what it holds, and replaces
the vault key. When the vault cannot even be opened, ``force`` deletes its files and its key instead:
what cannot be read by anyone is then gone as well.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from protocol.categories import ALL_CATEGORIES, Category
from protocol.errors import ConsentryError
from vault.keys import FileKekStore, KeyringKekStore
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.schema import peek_meta
from vault.vault import Vault


@dataclass(frozen=True)
class Erasure:
    """What one erasure did."""

    keys_destroyed: int = 0
    store_note: str | None = None  # what became of the request to the store (everything only)
    files_deleted: bool = False  # the vault could not be opened, so its files and key were deleted


def erase(
    layout: Layout,
    *,
    now: datetime,
    everything: bool = False,
    categories: Sequence[Category] = (),
    period: tuple[str, str] | None = None,
    force: bool = False,
    policy: Callable[[], MachinePolicy] = MachinePolicy,
) -> Erasure:
    """Erase exactly one of: ``everything``, ``categories``, or the UTC days ``period`` (first, last).

    ``force`` (with ``everything`` only) deletes the vault's files and key when the vault cannot be
    opened; otherwise that ConsentryError propagates. ``policy`` is read only to reach the store.
    """
    if sum([everything, bool(categories), period is not None]) != 1:
        raise ValueError("choose exactly one of everything, categories or a period")
    if force and not everything:
        raise ValueError("force only goes with erasing everything")
    from vault.shredding import destroy_kek, erase_categories, erase_period

    try:
        vault = Vault.open(layout, create=False)
        if everything:
            vault.kek()
    except ConsentryError:
        if not force:
            raise
        delete_vault_files(layout)
        return Erasure(files_deleted=True)
    store_note = None
    with vault:
        if everything:
            keys = erase_categories(vault, list(ALL_CATEGORIES), now=now, revoked_too=True)
            from agent.shipping import request_store_erasure

            store_note = request_store_erasure(vault, policy(), "all", now)
            destroy_kek(vault)  # a copy of the vault made before this cannot be opened any more
        elif categories:
            keys = erase_categories(vault, list(dict.fromkeys(categories)), now=now, revoked_too=False)
        else:
            assert period is not None
            keys = erase_period(vault, period[0], period[1], now=now)
    return Erasure(keys_destroyed=len(keys), store_note=store_note)


def delete_vault_files(layout: Layout) -> None:
    """Delete the vault database and every key of it, for a vault that cannot be opened."""
    _destroy_keyring_kek(layout.vault_db)
    FileKekStore(layout.kek_file).destroy()  # zeroed, not only unlinked
    for suffix in ("", "-wal", "-shm"):
        path = layout.vault_db.with_name(layout.vault_db.name + suffix)
        path.unlink(missing_ok=True)
    shutil.rmtree(layout.key_dir, ignore_errors=True)


def _destroy_keyring_kek(db: Path) -> None:
    """A vault that cannot be opened may still name its KEK in the OS keyring: remove it too (best effort)."""
    meta = peek_meta(db, ("kek_store", "vault_id"))
    if meta.get("kek_store") == "keyring" and meta.get("vault_id"):
        try:
            KeyringKekStore(f"vault:{meta['vault_id']}").destroy()
        except Exception:  # no usable keyring here: nothing of ours can be in it
            pass
