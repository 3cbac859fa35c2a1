"""Subject pseudonyms: a new random one per policy period, and the vault's private map of them.

A period is ``[k·D, (k+1)·D)`` whole UTC days since the Unix epoch, ``D`` being the policy's
``subject_rotation_days``: aligned to the epoch rather than to each vault's creation, so every
workstation of a fleet rotates at the same moment and the moment of rotation says nothing about who.
Each period's subject is ``"subj-" + 32 hex digits`` from ``os.urandom`` (a v4 UUID): it is not
derived from the previous subject, the device key or anything else the store sees, so the store
cannot tell that two subjects come from one person from the subjects themselves.

Only the vault knows which subjects are one employee's. It keeps them in the ``subjects`` table
(inside the 0600 vault, beside the consent receipts that name them), so that an erasure can name
every subject this vault ever used, and ``consentry mydata`` can show them. A subject whose data the
store was asked to erase is *retired*: new records of its period get a fresh subject.

The consent grant a record rests on is cited to the store under a per-subject alias,
``HMAC-SHA-256(vault secret, "consentry-receipt-alias-v1\0" || subject || "\0" || receipt_id)``,
in force since ``max(granted_at, period_start)``: one grant that covers two periods would otherwise
name the same receipt id and grant time in both and link their subjects. The employee's vault can
recompute every alias; the store cannot invert one.

A record belongs to the period its window starts in; a batch holds records of one period only, so a
batch never spans two subjects. The first period ever allocated takes the vault's original pseudonym
(``meta.subject``), which keeps the batches of vaults made before rotation existed under the subject
they were shipped with.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from protocol import domains
from protocol.timeutil import DAY_SECONDS, iso
from vault.vault import Vault

if TYPE_CHECKING:  # the wire models: only sealing a batch uses them (mydata lists periods without them)
    from protocol.consent_ref import ConsentReceiptRef
    from protocol.windows import AnyWindow

RECEIPT_ALIAS_SECRET = "receipt-alias"


@dataclass(frozen=True)
class SubjectPeriod:
    subject: str
    period_start: int  # UTC epoch seconds, inclusive
    period_end: int  # exclusive
    retired: bool


def new_subject() -> str:
    """A fresh random pseudonym (122 random bits), unrelated to any other."""
    return "subj-" + uuid.uuid4().hex


def aligned_period(at: int, rotation_days: int) -> tuple[int, int]:
    """The epoch-aligned period of ``rotation_days`` days that contains the instant ``at``."""
    if rotation_days < 1:
        raise ValueError("subject_rotation_days must be at least 1")
    length = rotation_days * DAY_SECONDS
    start = (at // length) * length
    return start, start + length


def periods(vault: Vault) -> list[SubjectPeriod]:
    """Every subject this vault has used, oldest period first."""
    rows = vault.db.execute(
        "SELECT subject, period_start, period_end, retired FROM subjects ORDER BY period_start, created"
    ).fetchall()
    return [SubjectPeriod(str(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in rows]


def all_subjects(vault: Vault) -> list[str]:
    """Every subject that any batch of this vault may carry: what a full erasure must name."""
    found = [p.subject for p in periods(vault)]
    found += [str(r[0]) for r in vault.db.execute("SELECT DISTINCT subject FROM batches WHERE subject IS NOT NULL")]
    if "subject" in vault.meta:
        found.append(vault.meta["subject"])
    return list(dict.fromkeys(found))


def subject_at(vault: Vault, at: int, rotation_days: int, now: datetime) -> SubjectPeriod:
    """The live subject of the period containing ``at``, allocated on first use.

    Must run inside the caller's write transaction (``seal_pending``), so two sealers cannot
    allocate two subjects for one period. A period allocated under another ``rotation_days`` keeps
    its bounds; a new period is clipped so that live periods never overlap.
    """
    row = vault.db.execute(
        "SELECT subject, period_start, period_end FROM subjects"
        " WHERE retired = 0 AND period_start <= ? AND ? < period_end",
        (at, at),
    ).fetchone()
    if row is not None:
        return SubjectPeriod(str(row[0]), int(row[1]), int(row[2]), False)
    start, end = aligned_period(at, rotation_days)
    (before,) = vault.db.execute(
        "SELECT MAX(period_end) FROM subjects WHERE retired = 0 AND period_end <= ?", (at,)
    ).fetchone()
    (after,) = vault.db.execute(
        "SELECT MIN(period_start) FROM subjects WHERE retired = 0 AND period_start > ?", (at,)
    ).fetchone()
    start = max(start, int(before)) if before is not None else start
    end = min(end, int(after)) if after is not None else end
    (used,) = vault.db.execute("SELECT COUNT(*) FROM subjects").fetchone()
    original = vault.meta.get("subject")
    subject = original if used == 0 and original else new_subject()
    vault.db.execute(
        "INSERT INTO subjects (subject, period_start, period_end, retired, created) VALUES (?, ?, ?, 0, ?)",
        (subject, start, end, iso(now)),
    )
    return SubjectPeriod(subject, start, end, False)


def retire(vault: Vault, subjects: list[str]) -> None:
    """Inside a transaction: these subjects were erased at the store; their periods get new ones."""
    vault.db.executemany("UPDATE subjects SET retired = 1 WHERE subject = ?", [(s,) for s in subjects])
    # The original pseudonym may never have been allocated to a period: record it as used and retired.
    original = vault.meta.get("subject")
    if (
        original in subjects
        and vault.db.execute("SELECT 1 FROM subjects WHERE subject = ?", (original,)).fetchone() is None
    ):
        vault.db.execute(
            "INSERT INTO subjects (subject, period_start, period_end, retired, created) VALUES (?, 0, 0, 1, ?)",
            (original, vault.meta.get("created", "")),
        )


def period_of(vault: Vault, subject: str) -> SubjectPeriod | None:
    row = vault.db.execute(
        "SELECT subject, period_start, period_end, retired FROM subjects WHERE subject = ?", (subject,)
    ).fetchone()
    return None if row is None else SubjectPeriod(str(row[0]), int(row[1]), int(row[2]), bool(row[3]))


def receipt_alias(alias_key: bytes, subject: str, receipt_id: str) -> str:
    """How the grant ``receipt_id`` is cited in batches of ``subject``: unlinkable across subjects."""
    message = domains.RECEIPT_ALIAS_V1 + subject.encode("ascii") + b"\0" + receipt_id.encode("ascii")
    return hmac.new(alias_key, message, hashlib.sha256).hexdigest()[:32]


def cite_records(records: Sequence[AnyWindow], alias_key: bytes, subject: str) -> list[AnyWindow]:
    """The records as they leave under ``subject``: each names its grant by the subject's alias."""
    return [r.model_copy(update={"receipt_id": receipt_alias(alias_key, subject, r.receipt_id)}) for r in records]


def cite_receipts(
    refs: Sequence[ConsentReceiptRef], alias_key: bytes, period: SubjectPeriod
) -> list[ConsentReceiptRef]:
    """The grants as cited under ``period``'s subject (alias id, in force since the period at the earliest)."""
    return [
        ref.model_copy(
            update={
                "receipt_id": receipt_alias(alias_key, period.subject, ref.receipt_id),
                "granted_at": max(ref.granted_at, period.period_start),
            }
        )
        for ref in refs
    ]
