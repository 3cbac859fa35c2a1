"""Crypto-shredding: destroy data keys (and their records) so the data cannot come back.

The wrapped keys and records are deleted in the same transaction as the ledger entry that records
the erasure. Then, because a deleted row can linger in the WAL and in free pages, the WAL is
checkpointed and truncated and the file is VACUUMed (``secure_delete`` is on, so freed pages are
zeroed as well).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from protocol.categories import Category
from protocol.timeutil import DAY_SECONDS, day_start, utc_day
from vault.batches import erase_pending_batches
from vault.compaction import compact
from vault.outbox import BatchInfo
from vault.policy import MachinePolicy
from vault.vault import Vault


def _shred(
    vault: Vault,
    where: str,
    params: tuple[object, ...],
    kind: str,
    fields: dict[str, object],
    now: datetime,
    batch_holds: Callable[[BatchInfo], bool],
) -> list[str]:
    """Delete matching data keys with their records, and unshipped batches that hold such data."""
    with vault.transaction():
        batch_ids = erase_pending_batches(vault, batch_holds, now)
        key_ids = [row[0] for row in vault.db.execute(f"SELECT key_id FROM data_keys WHERE {where}", params)]
        record_count = 0
        for key_id in key_ids:
            record_count += vault.db.execute("DELETE FROM records WHERE key_id = ?", (key_id,)).rowcount
        vault.data_keys.destroy(key_ids)
        if key_ids or batch_ids or kind == "erase":
            vault.ledger.append(
                kind, {**fields, "key_ids": key_ids, "records": record_count, "batches": batch_ids}, now
            )
    if key_ids or batch_ids:
        compact(vault)
    return key_ids


def destroy_kek(vault: Vault) -> None:
    """Replace the vault key (KEK) and destroy the old one, then push the old wrapped keys out of the file.

    After ``erase --all`` nothing captured is left, but a copy of the vault file made earlier (a backup,
    a stolen disk image) still holds data keys wrapped by the old KEK: destroying that KEK is what makes
    such a copy unreadable. The device key and other secrets are re-wrapped, so the device stays
    enrolled and queued store erasures can still be sent.
    """
    vault.replace_kek()
    compact(vault)


def erase_categories(vault: Vault, categories: list[Category], *, now: datetime, revoked_too: bool) -> list[str]:
    """Shred every key of ``categories``. The ledger entry also ends any grant still in force."""
    names = [c.value for c in categories]
    where = f"category IN ({', '.join('?' * len(names))})"
    fields: dict[str, object] = {"scope": "categories", "categories": names if revoked_too else []}
    fields["erased_categories"] = names
    return _shred(vault, where, tuple(names), "erase", fields, now, lambda b: bool(set(names) & set(b.record_counts)))


def erase_period(vault: Vault, first_day: str, last_day: str, *, now: datetime) -> list[str]:
    """Shred every key whose UTC day is within [first_day, last_day] (``YYYY-MM-DD``)."""
    if first_day > last_day:
        raise ValueError("the first day of the period is after its last day")
    fields: dict[str, object] = {"scope": "period", "first_day": first_day, "last_day": last_day, "categories": []}
    start = day_start(first_day)
    end = day_start(last_day) + DAY_SECONDS
    return _shred(
        vault,
        "day BETWEEN ? AND ? AND category != 'batch'",
        (first_day, last_day),
        "erase",
        fields,
        now,
        lambda b: b.period_start < end and b.period_end > start,
    )


def apply_retention(vault: Vault, policy: MachinePolicy, now: datetime) -> list[str]:
    """Shred keys (and records) older than their retention: the policy's, or, for a category whose
    records include some granted under a shorter retention, that shorter one (a policy that raises
    retention never keeps earlier records longer than the grant they were captured under said)."""
    days = _retention_days(vault, policy)
    cutoffs = {category: utc_day(now - timedelta(days=n)) for category, n in days.items()}
    cutoff = utc_day(now - timedelta(days=policy.retention_days))
    fields: dict[str, object] = {"reason": "retention", "retention_days": policy.retention_days, "before_day": cutoff}
    shorter = {category: n for category, n in days.items() if n < policy.retention_days}
    if shorter:
        fields["shorter_by_grant"] = shorter
    cutoff_ts = {category: day_start(day) for category, day in cutoffs.items()}
    where = " OR ".join("(category = ? AND day < ?)" for _ in cutoffs)
    return _shred(
        vault,
        f"({where}) AND category != 'batch'",
        tuple(value for item in cutoffs.items() for value in item),
        "key-shredded",
        fields,
        now,
        lambda b: any(b.period_start < cutoff_ts.get(c, 0) for c in b.record_counts),
    )


def _retention_days(vault: Vault, policy: MachinePolicy) -> dict[str, int]:
    """Per category: the policy's retention, lowered by any grant whose records are still here."""
    days = {category.value: policy.retention_days for category in Category}
    spans = vault.receipt_spans()
    for (receipt_id,) in vault.db.execute("SELECT DISTINCT receipt_id FROM records"):
        span = spans.get(receipt_id)
        if span is not None:
            name = span.receipt.category.value
            days[name] = min(days[name], span.receipt.retention_days)
    return days
