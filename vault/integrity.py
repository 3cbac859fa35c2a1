"""Authenticating everything the vault keeps (``consentry doctor``), and removing what does not (``--repair``).

``check`` opens every secret, every data key and every stored record the way any reader would: under
the vault's current KEK, each record with its own key and bound to its row and category. It reads all
of them, not a sample: one unreadable record is enough to make ``mydata``, the page and sealing a
batch fail, so a sample would only say "probably fine".

``repair`` removes, in one transaction, exactly what does not authenticate (each such record, and each
data key that no longer unwraps, with its records) and keeps every record that still does. It records
what it removed in the consent ledger (kind ``vault-repaired``, a narrowing entry: it only removes
data) and compacts the file. The vault key, the ledger and the device's other secrets are never
changed by it: a missing vault key or secret is not something removing data can mend.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocol.envelope import Context, Envelope, open_blob, record_context, secret_context, wrap_context
from protocol.errors import ConsentryError, InvalidRecord
from protocol.timeutil import utc_day
from vault.compaction import compact
from vault.vault import RECORDS_TABLE, Vault

REPAIR_KIND = "vault-repaired"

# Where an error about stored data sends the employee: to the command that names it and can mend it.
INTEGRITY_HINT = (
    "Run: consentry doctor (it names what failed; consentry doctor --repair keeps every record "
    "that still authenticates and removes only those that do not)"
)


@dataclass(frozen=True)
class IntegrityReport:
    """What ``check`` found. Lists are of what failed; counts are of everything looked at."""

    records: int = 0
    keys: int = 0
    secrets: int = 0
    batches: int = 0
    bad_records: tuple[int, ...] = ()
    bad_keys: tuple[str, ...] = ()
    bad_secrets: tuple[str, ...] = ()
    bad_batches: tuple[str, ...] = ()
    by_day: dict[tuple[str, str], int] = field(default_factory=dict)  # (category, UTC day) -> bad records

    @property
    def ok(self) -> bool:
        return not (self.bad_records or self.bad_keys or self.bad_secrets or self.bad_batches)

    @property
    def repairable(self) -> bool:
        """Something ``repair`` would remove (records or data keys)."""
        return bool(self.bad_records or self.bad_keys)

    def summary(self) -> str:
        """One plain sentence for ``doctor``."""
        if self.ok:
            return (
                f"all {_counted(self.records, 'stored record')}, {_counted(self.keys, 'data key')}, "
                f"{_counted(self.secrets, 'secret')} and {_counted(self.batches, 'held batch', 'held batches')} "
                "authenticate"
            )
        parts: list[str] = []
        if self.bad_records:
            where = ", ".join(f"{cat} on {day}: {n}" for (cat, day), n in sorted(self.by_day.items()))
            parts.append(
                f"{len(self.bad_records)} of {_counted(self.records, 'stored record')} do not authenticate ({where}): they "
                "were written under a key this vault no longer has, or were changed after they were written; "
                f"the other {self.records - len(self.bad_records)} are intact"
            )
        if self.bad_keys:
            parts.append(f"{_counted(len(self.bad_keys), 'data key')} cannot be opened with the vault key")
        if self.repairable:
            parts.append(
                "run: consentry doctor --repair (keeps every record that authenticates, removes these, "
                "and records that in your consent ledger)"
            )
        if self.bad_batches:
            parts.append(
                f"{_counted(len(self.bad_batches), 'held batch', 'held batches')} cannot be read "
                f"({', '.join(self.bad_batches)}); they "
                "cannot be sent: remove each with: consentry batches veto BATCH_ID"
            )
        if self.bad_secrets:
            parts.append(
                f"the vault's {', '.join(self.bad_secrets)} secret cannot be opened with the vault key; "
                "restore the vault and its key from the same backup, or start over with: consentry erase --all"
            )
        return "; ".join(parts)


def check(vault: Vault) -> IntegrityReport:
    """Authenticate every secret, data key, stored record and held batch payload (changes nothing)."""
    kek = vault.kek()
    secrets = vault.db.execute("SELECT name, blob FROM secrets ORDER BY name").fetchall()
    bad_secrets = tuple(str(name) for name, blob in secrets if not _opens(kek, blob, secret_context(name)))
    keys: dict[str, bytes] = {}
    bad_keys: list[str] = []
    key_rows = vault.db.execute("SELECT key_id, wrapped FROM data_keys ORDER BY key_id").fetchall()
    for key_id, wrapped in key_rows:
        try:
            keys[key_id] = open_blob(kek, wrapped, wrap_context(key_id))
        except InvalidRecord:
            bad_keys.append(key_id)
    records = 0
    bad_records: list[int] = []
    by_day: Counter[tuple[str, str]] = Counter()
    query = "SELECT record_id, category, start, key_id, blob FROM records ORDER BY record_id"
    for record_id, category, start, key_id, blob in vault.db.execute(query):
        records += 1
        if not _record_opens(keys.get(key_id), blob, record_id, key_id, category):
            bad_records.append(int(record_id))
            by_day[(category, utc_day(datetime.fromtimestamp(start, UTC)))] += 1
    batches = vault.db.execute("SELECT batch_id FROM batches WHERE payload IS NOT NULL ORDER BY created").fetchall()
    bad_batches = tuple(batch_id for (batch_id,) in batches if not _batch_opens(vault, batch_id))
    return IntegrityReport(
        records=records,
        keys=len(key_rows),
        secrets=len(secrets),
        batches=len(batches),
        bad_records=tuple(bad_records),
        bad_keys=tuple(bad_keys),
        bad_secrets=bad_secrets,
        bad_batches=bad_batches,
        by_day=dict(by_day),
    )


@dataclass(frozen=True)
class Repair:
    """What ``repair`` removed, and what it kept."""

    records_removed: int
    keys_removed: tuple[str, ...]
    records_kept: int
    by_day: dict[tuple[str, str], int]


def repair(vault: Vault, now: datetime) -> Repair:
    """Remove every record and data key that does not authenticate, keep the rest; recorded in the ledger.

    Checked again under the write lock, so what is removed is exactly what fails at that moment.
    """
    with vault.transaction():
        found = check(vault)
        removed = set(found.bad_records)
        for key_id in found.bad_keys:
            ids = vault.db.execute("SELECT record_id FROM records WHERE key_id = ?", (key_id,)).fetchall()
            removed.update(int(i) for (i,) in ids)
        vault.db.executemany("DELETE FROM records WHERE record_id = ?", [(i,) for i in sorted(removed)])
        vault.data_keys.destroy(found.bad_keys)
        if removed or found.bad_keys:
            vault.ledger.append(
                REPAIR_KIND,
                {
                    "reason": "did not authenticate",
                    "records_removed": len(removed),
                    "records_kept": found.records - len(removed),
                    "key_ids": list(found.bad_keys),
                    "days": sorted({day for (_, day) in found.by_day}),
                    "categories": sorted({cat for (cat, _) in found.by_day}),
                },
                now,
            )
    if removed or found.bad_keys:
        compact(vault)  # what was removed does not linger in free pages or the WAL
    return Repair(
        records_removed=len(removed),
        keys_removed=found.bad_keys,
        records_kept=found.records - len(removed),
        by_day=found.by_day,
    )


def _opens(key: bytes, blob: bytes, context: Context) -> bool:
    try:
        open_blob(key, blob, context)
    except InvalidRecord:
        return False
    return True


def _record_opens(key: bytes | None, blob: bytes, record_id: int, key_id: str, category: str) -> bool:
    """The record decrypts under its key, bound to its row, and says the category its row says."""
    if key is None:
        return False
    try:
        plaintext = Envelope(key).open(blob, record_context(RECORDS_TABLE, record_id, key_id, category))
        record = json.loads(plaintext)
    except (InvalidRecord, ValueError):
        return False
    return isinstance(record, dict) and record.get("category") == category


def _batch_opens(vault: Vault, batch_id: str) -> bool:
    from vault.batches import payload

    try:
        payload(vault, batch_id)
    except (ConsentryError, KeyError):
        return False
    return True


def _counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 data key``, ``3 data keys``: a count as a person writes it (agent.words.counted, for the vault)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
