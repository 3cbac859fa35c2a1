"""Batches on the workstation: seal records for release, hold them for the employee, veto or release.

A batch is sealed from records not yet in a batch whose grant is still in force and whose category
the policy still allows. Its payload (the records with app tokens re-keyed for this batch only) is
encrypted under a data key of its own, so a veto, an erasure or a successful shipment destroys it by
shredding that key. States::

    held --(hold passes | release)--> released --submit--> submitted --> approved --upload--> shipped
      \\--veto--> vetoed                              \\--> rejected        (erasure at any point before
                                                                           shipping --> erased)
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from vault.categories import Category
from vault.consent import ReceiptSpan
from vault.envelope import new_key, open_blob, seal, wrap_context
from vault.errors import ConsentError, VaultError
from vault.modelconfig import BOUNDARY
from vault.policy import MachinePolicy
from vault.release import (
    GENESIS_HASH,
    BatchManifest,
    ConsentReceiptRef,
    build_manifest,
    encode_payload,
    manifest_digest,
    rekey_app_tokens,
)
from vault.timeutil import iso, parse_iso, utc_day
from vault.vault import Vault
from vault.windows import AnyWindow

BatchState = Literal["held", "released", "vetoed", "submitted", "approved", "rejected", "shipped", "erased"]
PENDING_STATES = ("held", "released", "submitted", "approved")
MAX_RECORDS_PER_BATCH = 50_000


class BatchInfo(BaseModel):
    model_config = BOUNDARY

    batch_id: str
    state: BatchState
    created: str
    hold_until: str
    period_start: int
    period_end: int
    record_counts: dict[str, int]
    payload_sha256: str
    privacy_checks: list[dict[str, Any]]
    seq: int | None = None
    manifest_sha256: str | None = None
    receipt: dict[str, Any] | None = None
    last_error: str | None = None


def _payload_context(batch_id: str) -> dict[str, object]:
    return {"table": "batches", "batch_id": batch_id}


def receipt_refs(spans: dict[str, ReceiptSpan]) -> list[ConsentReceiptRef]:
    return [
        ConsentReceiptRef(
            receipt_id=rid,
            category=span.receipt.category,
            notice_id=span.receipt.notice_id,
            notice_version=str(span.receipt.notice_version),
            notice_sha256=span.receipt.notice_sha256,
            lawful_basis="consent",
            purposes=span.receipt.purposes,
            granted_at=int(span.granted_at.timestamp()),
        )
        for rid, span in spans.items()
    ]


def seal_pending(vault: Vault, policy: MachinePolicy, now: datetime, *, up_to: int | None = None) -> BatchInfo | None:
    """Seal the records not yet in a batch (ending by ``up_to``) into a held batch; None if there are none."""
    spans = vault.receipt_spans()
    live = {rid for rid, span in spans.items() if span.ended_at is None and policy.allows(span.receipt.category)}
    cutoff = int(now.timestamp()) if up_to is None else up_to
    ids = [
        int(row[0])
        for row in vault.db.execute(
            "SELECT record_id, receipt_id FROM records WHERE batch_id IS NULL AND end <= ? ORDER BY start LIMIT ?",
            (cutoff, MAX_RECORDS_PER_BATCH),
        )
        if row[1] in live
    ]
    if not ids:
        return None
    pairs = vault.read_windows_with_ids(record_ids=ids)
    records: list[AnyWindow] = [record for _, record in pairs]
    batch_id = uuid.uuid4().hex
    released = rekey_app_tokens(records, os.urandom(32))  # the per-batch key is never stored
    payload = encode_payload(batch_id, released)
    preview = build_manifest(
        batch_id=batch_id,
        subject=vault.subject,
        device_kid=vault.device_key.kid,
        seq=1,
        prev_batch_hash=GENESIS_HASH,
        records=released,
        receipts=receipt_refs(spans),
        payload=payload,
        created=int(now.timestamp()),
        source_records=records,
    )
    key = new_key()
    key_id = f"batch/{batch_id}"
    hold_until = now + timedelta(hours=policy.hold_hours)
    counts = {c.value: n for c, n in preview.record_counts.items()}
    with vault.transaction():
        vault.db.execute(
            "INSERT INTO data_keys (key_id, category, day, wrapped, uses, created) VALUES (?, 'batch', ?, ?, 1, ?)",
            (key_id, utc_day(now), seal(vault.kek(), key, wrap_context(key_id)), iso(now)),
        )
        vault.db.execute(
            "INSERT INTO batches (batch_id, state, created, hold_until, period_start, period_end, record_counts,"
            " key_id, payload, payload_sha256, privacy_checks, updated) VALUES (?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                iso(now),
                iso(hold_until),
                preview.period_start,
                preview.period_end,
                json.dumps(counts),
                key_id,
                seal(key, payload, _payload_context(batch_id)),
                preview.payload_sha256,
                json.dumps([c.model_dump(mode="json") for c in preview.privacy_checks]),
                iso(now),
            ),
        )
        vault.db.executemany("UPDATE records SET batch_id = ? WHERE record_id = ?", [(batch_id, i) for i in ids])
        vault.ledger.append(
            "batch-sealed",
            {
                "batch_id": batch_id,
                "payload_sha256": preview.payload_sha256,
                "record_counts": counts,
                "hold_until": iso(hold_until),
            },
            now,
        )
    return get(vault, batch_id)


def get(vault: Vault, batch_id: str) -> BatchInfo:
    row = vault.db.execute(
        "SELECT batch_id, state, created, hold_until, period_start, period_end, record_counts, payload_sha256,"
        " privacy_checks, seq, manifest_sha256, receipt, last_error FROM batches WHERE batch_id = ?",
        (batch_id,),
    ).fetchone()
    if row is None:
        raise VaultError(f"there is no batch {batch_id!r}; list them with: consentry batches list")
    return _info(row)


def _info(row: tuple[Any, ...]) -> BatchInfo:
    return BatchInfo(
        batch_id=row[0],
        state=row[1],
        created=row[2],
        hold_until=row[3],
        period_start=row[4],
        period_end=row[5],
        record_counts=json.loads(row[6]),
        payload_sha256=row[7],
        privacy_checks=json.loads(row[8]),
        seq=row[9],
        manifest_sha256=row[10],
        receipt=json.loads(row[11]) if row[11] else None,
        last_error=row[12],
    )


def list_batches(vault: Vault) -> list[BatchInfo]:
    rows = vault.db.execute(
        "SELECT batch_id, state, created, hold_until, period_start, period_end, record_counts, payload_sha256,"
        " privacy_checks, seq, manifest_sha256, receipt, last_error FROM batches ORDER BY created"
    ).fetchall()
    return [_info(row) for row in rows]


def payload(vault: Vault, batch_id: str) -> bytes:
    """The exact bytes that would leave this computer (decrypted for the employee's preview)."""
    row = vault.db.execute("SELECT key_id, payload FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None or row[1] is None:
        raise VaultError(f"batch {batch_id} holds no data any more (it was shipped, vetoed or erased)")
    key = vault.data_keys.unwrap(row[0])
    return open_blob(key, row[1], _payload_context(batch_id))


def _require_state(info: BatchInfo, allowed: tuple[str, ...], action: str) -> None:
    if info.state not in allowed:
        raise ConsentError(f"batch {info.batch_id} is {info.state}; it can no longer be {action}")


def _shred_batch(vault: Vault, batch_id: str, state: BatchState, now: datetime) -> None:
    """Inside a transaction: destroy the payload key, the payload and the batch's records."""
    key_id = f"batch/{batch_id}"
    vault.db.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))
    vault.db.execute("DELETE FROM records WHERE batch_id = ?", (batch_id,))
    vault.db.execute(
        "UPDATE batches SET state = ?, payload = NULL, key_id = NULL, updated = ? WHERE batch_id = ?",
        (state, iso(now), batch_id),
    )
    vault.data_keys.forget([key_id])


def veto(vault: Vault, batch_id: str, now: datetime) -> BatchInfo:
    """The employee's veto: the batch never leaves, and its data is shredded."""
    from vault.shredding import compact

    with vault.transaction():
        info = get(vault, batch_id)
        _require_state(info, ("held", "released"), "vetoed (it was already submitted for review)")
        _shred_batch(vault, batch_id, "vetoed", now)
        vault.ledger.append("batch-vetoed", {"batch_id": batch_id, "record_counts": info.record_counts}, now)
    compact(vault)
    return get(vault, batch_id)


def release(vault: Vault, batch_id: str, now: datetime) -> BatchInfo:
    """The employee ends the hold early: the batch goes to steward review at the next sync."""
    with vault.transaction():
        info = get(vault, batch_id)
        _require_state(info, ("held",), "released early")
        vault.db.execute(
            "UPDATE batches SET state = 'released', hold_until = ?, updated = ? WHERE batch_id = ?",
            (iso(now), iso(now), batch_id),
        )
        vault.ledger.append("batch-released", {"batch_id": batch_id, "by": "employee"}, now)
    return get(vault, batch_id)


def due_for_review(vault: Vault, now: datetime) -> list[BatchInfo]:
    """Held batches whose hold has passed (recorded as released), and released ones, oldest first."""
    out = []
    for info in list_batches(vault):
        if info.state == "held" and parse_iso(info.hold_until) <= now:
            with vault.transaction():
                vault.db.execute(
                    "UPDATE batches SET state = 'released', updated = ? WHERE batch_id = ?", (iso(now), info.batch_id)
                )
                vault.ledger.append("batch-released", {"batch_id": info.batch_id, "by": "hold-expired"}, now)
            info = get(vault, info.batch_id)
        if info.state == "released":
            out.append(info)
    return out


def build_submission(vault: Vault, batch_id: str, now: datetime) -> BatchManifest:
    """The manifest to submit: the next sequence number, chained to the last submitted manifest."""
    row = vault.db.execute(
        "SELECT seq, manifest_sha256 FROM batches WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    seq, prev = (1, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))
    from vault.release import decode_payload
    from vault.windows import parse_window

    data = payload(vault, batch_id)
    records = [parse_window(r) for r in decode_payload(data).records]
    source_ids = [int(r[0]) for r in vault.db.execute("SELECT record_id FROM records WHERE batch_id = ?", (batch_id,))]
    info = get(vault, batch_id)
    return build_manifest(
        batch_id=batch_id,
        subject=vault.subject,
        device_kid=vault.device_key.kid,
        seq=seq,
        prev_batch_hash=prev,
        records=records,
        receipts=receipt_refs(vault.receipt_spans()),
        payload=data,
        created=int(parse_iso(info.created).timestamp()),
        source_records=vault.read_windows(record_ids=source_ids),  # lets the re-keying check run again
    )


def mark_submitted(vault: Vault, manifest: BatchManifest, now: datetime) -> None:
    with vault.transaction():
        vault.db.execute(
            "UPDATE batches SET state = 'submitted', seq = ?, manifest = ?, manifest_sha256 = ?, last_error = NULL,"
            " updated = ? WHERE batch_id = ? AND state = 'released'",
            (manifest.seq, manifest.model_dump_json(), manifest_digest(manifest), iso(now), manifest.batch_id),
        )


def manifest_of(vault: Vault, batch_id: str) -> BatchManifest:
    row = vault.db.execute("SELECT manifest FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None or row[0] is None:
        raise VaultError(f"batch {batch_id} has not been submitted for review yet")
    return BatchManifest.model_validate_json(row[0])


def mark_decision(
    vault: Vault, batch_id: str, decision: Literal["approved", "rejected"], detail: str, now: datetime
) -> None:
    with vault.transaction():
        vault.db.execute(
            "UPDATE batches SET state = ?, last_error = ?, updated = ? WHERE batch_id = ? AND state = 'submitted'",
            (decision, detail if decision == "rejected" else None, iso(now), batch_id),
        )
        kind = "batch-approved" if decision == "approved" else "batch-rejected"
        vault.ledger.append(kind, {"batch_id": batch_id, "detail": detail}, now)
        if decision == "rejected":
            _shred_batch(vault, batch_id, "rejected", now)


def mark_shipped(vault: Vault, batch_id: str, receipt: dict[str, Any], now: datetime) -> None:
    """The store acknowledged durable storage: keep its receipt, shred the local copy."""
    from vault.shredding import compact

    with vault.transaction():
        _shred_batch(vault, batch_id, "shipped", now)
        vault.db.execute(
            "UPDATE batches SET receipt = ?, last_error = NULL WHERE batch_id = ?",
            (json.dumps(receipt, sort_keys=True), batch_id),
        )
        vault.ledger.append("batch-shipped", {"batch_id": batch_id, "receipt_leaf": receipt.get("leaf_index")}, now)
    compact(vault)


def record_error(vault: Vault, batch_id: str, message: str, now: datetime) -> None:
    with vault.transaction():
        vault.db.execute(
            "UPDATE batches SET last_error = ?, updated = ? WHERE batch_id = ?", (message, iso(now), batch_id)
        )


def erase_pending_batches(vault: Vault, holds: Callable[[BatchInfo], bool], now: datetime) -> list[str]:
    """Inside the caller's transaction: shred every unshipped batch for which ``holds(batch)``."""
    erased = []
    for info in list_batches(vault):
        if info.state in PENDING_STATES and holds(info):
            _shred_batch(vault, info.batch_id, "erased", now)
            erased.append(info.batch_id)
    return erased


def categories_of(info: BatchInfo) -> list[Category]:
    return [Category(c) for c in info.record_counts]
