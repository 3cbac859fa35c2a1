"""The employee's own data as a plain SQLite file (data portability, GDPR Art. 20): ``mydata --export``.

One table per category (one row per window record, nested values as JSON text), plus
``consent_receipts`` and ``ledger``. The file is **plaintext** by design: it is the employee's copy,
for any SQLite tool. It is created owner-only (0600) before anything is written to it, and an
existing file is never overwritten. sqlite-utils is imported here only, so no other command pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.categories import ALL_CATEGORIES
from protocol.timeutil import iso

if TYPE_CHECKING:
    from vault.vault import Vault

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    rows: dict[str, int]  # table -> rows written


def export_my_data(vault: Vault, path: Path) -> ExportSummary:
    """Write everything the vault holds about its employee, decrypted, into a new SQLite file at ``path``.

    Raises ``FileExistsError`` if ``path`` exists (nothing is touched) and ``FileNotFoundError`` if its
    folder does not. On any failure after the file was created, the partial file is removed.
    """
    import sqlite_utils

    spans = vault.receipt_spans()
    entries = list(vault.ledger.entries())
    _create_private(path)
    try:
        db = sqlite_utils.Database(path)
        rows: dict[str, int] = {}
        with db.conn:
            db.table("export_info").insert(
                {"format_version": FORMAT_VERSION, "subject": vault.subject, "note": "plaintext copy of your data"}
            )
            # Streamed a category at a time (constant memory at any vault size); nested values (histograms,
            # per-app seconds) become JSON text columns (sqlite-utils does that). A record that fails to
            # authenticate stops the export, and the partial file is removed below.
            for category in ALL_CATEGORIES:
                counted = _Counted(vault.iter_records_as_stored(category.value))
                db.table(category.value).insert_all(counted, alter=True, batch_size=1000)
                rows[category.value] = counted.n
            receipts = [
                span.receipt.to_json()
                | {
                    "granted_at": iso(span.granted_at),
                    "ended_at": iso(span.ended_at) if span.ended_at else None,
                }
                for span in spans.values()
            ]
            if receipts:
                db.table("consent_receipts").insert_all(receipts, pk="receipt_id", alter=True)
            rows["consent_receipts"] = len(receipts)
            ledger = [
                {"seq": e.seq, "kind": e.kind, "at": e.at, "body": e.body, "prev_hash": e.prev_hash, "hash": e.hash}
                for e in entries
            ]
            if ledger:
                db.table("ledger").insert_all(ledger, pk="seq")
            rows["ledger"] = len(ledger)
        db.close()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ExportSummary(path=path, rows=rows)


class _Counted:
    """An iterator that counts what passed through it."""

    def __init__(self, items: Iterator[dict[str, Any]]) -> None:
        self._items = items
        self.n = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self._items:
            self.n += 1
            yield item


def _create_private(path: Path) -> None:
    """Create ``path`` empty and owner-only, refusing an existing file (O_EXCL also refuses a symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask
    os.close(fd)
