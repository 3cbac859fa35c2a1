"""Editing a vault file the way an attacker with file access would: around the ledger's triggers."""

from __future__ import annotations

import contextlib
import sqlite3

from vault.paths import Layout


def edit_around_triggers(layout: Layout, sql: str, *params: object) -> None:
    """Run ``sql`` on the vault file after dropping the append-only triggers that would refuse it."""
    with contextlib.closing(sqlite3.connect(layout.vault_db)) as conn:
        conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
        conn.execute(sql, params)
        conn.commit()
