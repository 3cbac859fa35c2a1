"""Compaction: push deleted bytes out of the vault file after a shred (the WAL, then free pages).

Its own module so that both the batch machinery and crypto-shredding can use it without importing
each other (shredding depends on batches, never the other way round).
"""

from __future__ import annotations

import time

from protocol.errors import VaultError
from vault.vault import Vault

CHECKPOINT_ATTEMPTS = 50


def compact(vault: Vault) -> None:
    """Push deleted bytes out of the WAL and free pages.

    A checkpoint reports "busy" while another connection (the agent, a CLI command) is reading; it is
    retried for a few seconds, and if it still cannot finish, that is an error, not a silent success.
    """
    _checkpoint(vault)
    vault.db.execute("VACUUM")
    _checkpoint(vault)


def _checkpoint(vault: Vault) -> None:
    for _ in range(CHECKPOINT_ATTEMPTS):
        busy, _, _ = vault.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.1)
    raise VaultError(
        "the data was destroyed, but another program kept the write-ahead log busy, so its old copy is not "
        "overwritten yet; run the command again once the agent is idle (consentry doctor shows the state)"
    )
