"""Batches on the workstation: seal records for release, hold them for the employee, veto or release.

A batch is sealed from records not yet in a batch whose grant is still in force and whose category
the policy still allows. Its payload (the records with app tokens re-keyed for this batch only) is
encrypted under a data key of its own, so a veto, an erasure or a successful shipment destroys it by
shredding that key. States::

    held --(hold passes | release)--> released --(seq assigned)--> submitting --(store has it)--> submitted
      |                                  |                                                          |
      +--veto--> vetoed <----------------+                          rejected <--+-- approved --> shipped
                                                                                |
    an erasure: held/released --> erased;   submitting/submitted/approved --> withdrawing --> erased

Every transition is one ``BEGIN IMMEDIATE`` transaction that checks the state it leaves, so the
agent's housekeeping thread and the employee's commands cannot interleave into an impossible state.
What is sent to the store (the manifest, then the sealed upload) is stored before it is sent, so a
retry after a crash or a lost answer sends the same bytes and gets the same answer.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from protocol.batch import LedgerCheckpointRef, SealedBatch, build_header
from protocol.consent_ref import ConsentReceiptRef
from protocol.envelope import Context, context, open_blob, seal
from protocol.errors import ConsentError, VaultError
from protocol.manifest import NO_PREVIOUS_BATCH, BatchManifest, build_manifest, manifest_digest, read_manifest
from protocol.payload import decode_payload, encode_payload
from protocol.privacy import rekey_app_tokens
from protocol.timeutil import iso, parse_iso, utc_day
from protocol.windows import AnyWindow, parse_window
from vault.compaction import compact
from vault.consent import ReceiptSpan, sealable_receipts, uncovered
from vault.ledger import Checkpoint
from vault.outbox import BatchInfo, get_batch, list_batches
from vault.policy import MachinePolicy
from vault.subjects import RECEIPT_ALIAS_SECRET, cite_receipts, cite_records, period_of, subject_at
from vault.vault import Vault

# Batches whose data is still on this computer and may still leave it.
PENDING_STATES = ("held", "released", "submitting", "submitted", "approved")
# Of those, the ones the store already knows about (an erasure must tell it).
AT_STORE_STATES = ("submitting", "submitted", "approved")
MAX_RECORDS_PER_BATCH = 50_000


def _payload_context(batch_id: str) -> Context:
    return context({"table": "batches", "batch_id": batch_id})


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
    """Seal the records not yet in a batch (ending by ``up_to``) into a held batch; None if there are none.

    One transaction from the first read to the last write: a concurrent seal cannot take the same
    records, and an erasure either happens before (its records are not read) or after (it finds the
    new batch and erases it too).
    """
    cutoff = int(now.timestamp()) if up_to is None else up_to
    alias_key = vault.local_secret(RECEIPT_ALIAS_SECRET)  # outside the transaction: made on first use
    with vault.transaction():
        spans = vault.receipt_spans()
        live = sealable_receipts(spans, policy)  # consent in force, category allowed, terms not widened
        rows = vault.db.execute(
            "SELECT record_id, receipt_id, start FROM records WHERE batch_id IS NULL AND end <= ?"
            " ORDER BY start LIMIT ?",
            (cutoff, MAX_RECORDS_PER_BATCH),
        ).fetchall()
        eligible = [(int(record_id), int(start)) for record_id, receipt_id, start in rows if receipt_id in live]
        if not eligible:
            return None
        # One subject period per batch: a batch never carries two subjects (later periods wait their turn).
        period = subject_at(vault, eligible[0][1], policy.subject_rotation_days, now)
        ids = [i for i, start in eligible if period.period_start <= start < period.period_end]
        records: list[AnyWindow] = [record for _, record in vault.read_windows_with_ids(record_ids=ids)]
        batch_id = uuid.uuid4().hex
        released = rekey_app_tokens(records, os.urandom(32))  # the per-batch key is never stored
        released = cite_records(released, alias_key, period.subject)
        payload_bytes = encode_payload(batch_id, released)
        preview = build_manifest(
            batch_id=batch_id,
            subject=period.subject,
            seq=1,
            prev_batch_hash=NO_PREVIOUS_BATCH,
            records=released,
            receipts=cite_receipts(receipt_refs(spans), alias_key, period),
            payload=payload_bytes,
            created=int(now.timestamp()),
            source_records=records,
        )
        key_id = f"batch/{batch_id}"
        hold_until = now + timedelta(hours=policy.hold_hours)
        counts = {c.value: n for c, n in preview.record_counts.items()}
        key = vault.data_keys.add(key_id, "batch", utc_day(now), uses=1, created=iso(now))
        vault.db.execute(
            "INSERT INTO batches (batch_id, subject, state, created, hold_until, period_start, period_end,"
            " record_counts, key_id, payload, payload_sha256, privacy_checks, updated)"
            " VALUES (?, ?, 'held', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                batch_id, period.subject, iso(now), iso(hold_until), preview.period_start, preview.period_end,
                json.dumps(counts),
                key_id, seal(key, payload_bytes, _payload_context(batch_id)), preview.payload_sha256,
                json.dumps([c.model_dump(mode="json") for c in preview.privacy_checks]), iso(now),
            ),
        )  # fmt: skip
        vault.db.executemany("UPDATE records SET batch_id = ? WHERE record_id = ?", [(batch_id, i) for i in ids])
        vault.ledger.append(
            "batch-sealed",
            {"batch_id": batch_id, "payload_sha256": preview.payload_sha256, "record_counts": counts,
             "hold_until": iso(hold_until), "subject": period.subject},
            now,
        )  # fmt: skip
    return get_batch(vault, batch_id)


def check_terms(vault: Vault, batch_id: str, policy: MachinePolicy) -> None:
    """Refuse (ConsentError) to send a batch whose records were captured under narrower terms than ``policy``'s.

    Called before a batch goes to review and before it is uploaded: a policy that added a store, a
    recipient or longer retention after capture never carries earlier records out under its terms.
    """
    spans = vault.receipt_spans()
    rows = vault.db.execute("SELECT DISTINCT receipt_id FROM records WHERE batch_id = ?", (batch_id,)).fetchall()
    for (receipt_id,) in rows:
        span = spans.get(receipt_id)
        changes = ["its grant is not in the ledger"] if span is None else uncovered(span.receipt, policy)
        if changes:
            raise ConsentError(
                f"batch {batch_id} was captured under narrower terms than the machine policy's now "
                f"({'; '.join(changes)}); it stays on this computer and is not sent"
            )


def payload(vault: Vault, batch_id: str) -> bytes:
    """The exact bytes that would leave this computer (decrypted for the employee's preview)."""
    row = vault.db.execute("SELECT key_id, payload FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None or row[1] is None:
        raise VaultError(f"batch {batch_id} holds no data any more (it was shipped, vetoed or erased)")
    key = vault.data_keys.unwrap(row[0])
    return open_blob(key, row[1], _payload_context(batch_id))


def preview_records(vault: Vault, batch: BatchInfo) -> list[Any]:
    """The records a pending batch would send, as sent, for the employee's preview; none once it left."""
    if batch.state not in PENDING_STATES:
        return []
    return list(decode_payload(payload(vault, batch.batch_id)).records)


def _move(
    vault: Vault, batch_id: str, leaving: tuple[str, ...], action: str, now: datetime, **fields: Any
) -> BatchInfo:
    """Inside a transaction: change a batch's state (and ``fields``) if it is in one of ``leaving``."""
    info = get_batch(vault, batch_id)
    if info.state not in leaving:
        raise ConsentError(f"batch {batch_id} is {info.state}; it can no longer be {action}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    vault.db.execute(
        f"UPDATE batches SET {assignments}, updated = ? WHERE batch_id = ?", (*fields.values(), iso(now), batch_id)
    )
    return info


def _shred_batch(vault: Vault, batch_id: str) -> None:
    """Inside a transaction: destroy the payload key, the payload and the batch's records."""
    key_id = f"batch/{batch_id}"
    vault.data_keys.destroy([key_id])
    vault.db.execute("DELETE FROM records WHERE batch_id = ?", (batch_id,))
    vault.db.execute("UPDATE batches SET payload = NULL, key_id = NULL, upload = NULL WHERE batch_id = ?", (batch_id,))


def veto(vault: Vault, batch_id: str, now: datetime) -> BatchInfo:
    """The employee's veto: the batch never leaves, and its data is shredded."""
    with vault.transaction():
        info = _move(vault, batch_id, ("held", "released"), "vetoed (it was already submitted for review)", now,
                     state="vetoed")  # fmt: skip
        _shred_batch(vault, batch_id)
        vault.ledger.append("batch-vetoed", {"batch_id": batch_id, "record_counts": info.record_counts}, now)
    compact(vault)
    return get_batch(vault, batch_id)


def release(vault: Vault, batch_id: str, now: datetime) -> BatchInfo:
    """The employee ends the hold early: the batch goes to steward review at the next sync."""
    with vault.transaction():
        _move(vault, batch_id, ("held",), "released early", now, state="released", hold_until=iso(now))
        vault.ledger.append("batch-released", {"batch_id": batch_id, "by": "employee"}, now)
    return get_batch(vault, batch_id)


def release_expired_holds(vault: Vault, now: datetime) -> list[str]:
    """Held batches whose hold has passed become released (recorded in the ledger)."""
    released = []
    for info in list_batches(vault, ("held",)):
        if parse_iso(info.hold_until) > now:
            continue
        with vault.transaction():
            if get_batch(vault, info.batch_id).state != "held":  # vetoed or erased meanwhile
                continue
            _move(vault, info.batch_id, ("held",), "released", now, state="released")
            vault.ledger.append("batch-released", {"batch_id": info.batch_id, "by": "hold-expired"}, now)
        released.append(info.batch_id)
    return released


def prepare_submission(vault: Vault, batch_id: str, now: datetime) -> BatchManifest:
    """Assign the next sequence number and store the manifest, before anything is sent.

    Chained to the last manifest this device ever numbered, whatever became of it, so the chain the
    store checks never has a gap or a repeated number.
    """
    alias_key = vault.local_secret(RECEIPT_ALIAS_SECRET)
    with vault.transaction():
        row = vault.db.execute(
            "SELECT seq, manifest_sha256 FROM batches WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        seq, prev = (1, NO_PREVIOUS_BATCH) if row is None else (int(row[0]) + 1, str(row[1]))
        info = get_batch(vault, batch_id)
        subject = subject_of(vault, batch_id)
        receipts = receipt_refs(vault.receipt_spans())
        (sealed_under,) = vault.db.execute("SELECT subject FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if sealed_under and (period := period_of(vault, sealed_under)) is not None:  # else sealed before rotation
            receipts = cite_receipts(receipts, alias_key, period)
        data = payload(vault, batch_id)
        records = [parse_window(r) for r in decode_payload(data).records]
        source_ids = [
            int(r[0]) for r in vault.db.execute("SELECT record_id FROM records WHERE batch_id = ?", (batch_id,))
        ]
        manifest = build_manifest(
            batch_id=batch_id, subject=subject, seq=seq, prev_batch_hash=prev,
            records=records, receipts=receipts, payload=data,
            created=int(parse_iso(info.created).timestamp()),
            source_records=vault.read_windows(record_ids=source_ids),  # lets the re-keying check run again
        )  # fmt: skip
        _move(vault, batch_id, ("released",), "submitted", now, state="submitting", seq=seq,
              manifest=manifest.model_dump_json(), manifest_sha256=manifest_digest(manifest))  # fmt: skip
    return manifest


def subject_of(vault: Vault, batch_id: str) -> str:
    """The subject a batch was sealed under (batches sealed before rotation: the vault's original one)."""
    row = vault.db.execute("SELECT subject FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    return str(row[0]) if row is not None and row[0] else vault.subject


def manifest_of(vault: Vault, batch_id: str) -> BatchManifest:
    """The manifest as numbered and stored: version 2, or version 1 for a batch submitted before it."""
    row = vault.db.execute("SELECT manifest FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None or row[0] is None:
        raise VaultError(f"batch {batch_id} has not been submitted for review yet")
    return read_manifest(row[0])


def mark_submitted(vault: Vault, batch_id: str, now: datetime) -> bool:
    """The store acknowledged the manifest. False when the batch left 'submitting' meanwhile."""
    with vault.transaction():
        if get_batch(vault, batch_id).state != "submitting":
            return False
        _move(vault, batch_id, ("submitting",), "submitted", now, state="submitted", last_error=None)
    return True


def mark_decision(
    vault: Vault, batch_id: str, decision: Literal["approved", "rejected"], detail: str, now: datetime
) -> bool:
    """Record the stewards' decision; a rejected batch is shredded here. False if no longer submitted."""
    with vault.transaction():
        if get_batch(vault, batch_id).state != "submitted":
            return False
        _move(vault, batch_id, ("submitted",), decision, now, state=decision,
              last_error=detail if decision == "rejected" else None)  # fmt: skip
        kind = "batch-approved" if decision == "approved" else "batch-rejected"
        vault.ledger.append(kind, {"batch_id": batch_id, "detail": detail}, now)
        if decision == "rejected":
            _shred_batch(vault, batch_id)
    return True


def prepare_upload(
    vault: Vault, batch_id: str, store_public_key: bytes, now: datetime
) -> tuple[SealedBatch, Checkpoint]:
    """The sealed upload of an approved batch (to ``store_public_key``) and the signed ledger checkpoint
    its header names.

    Made once, from a fresh checkpoint, and stored; every later call returns the same two, so a retry
    sends identical bytes. Only local work happens here (one transaction); the caller sends it.
    """
    from protocol.sealing import seal_batch  # X25519 and signing: only the shipping path needs them

    with vault.transaction():
        row = vault.db.execute("SELECT state, upload FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None or row[0] != "approved":
            raise ConsentError(f"batch {batch_id} is not approved for upload")
        if row[1] is not None:
            sealed = SealedBatch.model_validate_json(row[1])
            seq = sealed.header.ledger_checkpoint.seq
            checkpoint = next(cp for cp in vault.ledger.checkpoints() if cp.seq == seq)
            return sealed, checkpoint
        checkpoint = vault.ledger.checkpoint(vault.device_key, now)
        ref = LedgerCheckpointRef(seq=checkpoint.seq, head_hash=checkpoint.head_hash)
        manifest = manifest_of(vault, batch_id)
        header = build_header(manifest, ref, device_kid=vault.device_key.kid, created=int(now.timestamp()))
        sealed = seal_batch(header, payload(vault, batch_id), store_public_key, vault.device_key)
        vault.db.execute("UPDATE batches SET upload = ? WHERE batch_id = ?", (sealed.model_dump_json(), batch_id))
    return sealed, checkpoint


def discard_upload(vault: Vault, batch_id: str) -> None:
    """Forget an approved batch's prepared upload, so the next ``prepare_upload`` makes a fresh one.

    Only for an upload the store refused without storing it (its checkpoint is older than one the store
    witnessed since): a retry of the same bytes would be refused for ever.
    """
    with vault.transaction():
        vault.db.execute("UPDATE batches SET upload = NULL WHERE batch_id = ? AND state = 'approved'", (batch_id,))


def mark_shipped(vault: Vault, batch_id: str, receipt: dict[str, Any], now: datetime) -> bool:
    """The store acknowledged durable storage: keep its receipt, shred the local copy."""
    with vault.transaction():
        if get_batch(vault, batch_id).state != "approved":
            return False
        _move(vault, batch_id, ("approved",), "shipped", now, state="shipped", last_error=None,
              receipt=json.dumps(receipt, sort_keys=True))  # fmt: skip
        _shred_batch(vault, batch_id)
        vault.ledger.append("batch-shipped", {"batch_id": batch_id, "receipt_leaf": receipt.get("leaf_index")}, now)
    compact(vault)
    return True


def mark_withdrawn(vault: Vault, batch_id: str, now: datetime) -> None:
    """The store closed a batch this computer erased before shipping it."""
    with vault.transaction():
        if get_batch(vault, batch_id).state == "withdrawing":
            _move(vault, batch_id, ("withdrawing",), "withdrawn", now, state="erased", last_error=None)


def record_error(vault: Vault, batch_id: str, message: str, now: datetime) -> None:
    with vault.transaction():
        vault.db.execute(
            "UPDATE batches SET last_error = ?, updated = ? WHERE batch_id = ?", (message, iso(now), batch_id)
        )


def erase_pending_batches(vault: Vault, holds: Callable[[BatchInfo], bool], now: datetime) -> list[str]:
    """Inside the caller's transaction: shred every unshipped batch for which ``holds(batch)``.

    A batch the store already knows about becomes ``withdrawing``: the next sync tells the store,
    so that the device's later batches are not held up behind one that will never arrive.
    """
    erased = []
    for info in list_batches(vault, PENDING_STATES):
        if holds(info):
            state = "withdrawing" if info.state in AT_STORE_STATES else "erased"
            vault.db.execute(
                "UPDATE batches SET state = ?, updated = ? WHERE batch_id = ?", (state, iso(now), info.batch_id)
            )
            _shred_batch(vault, info.batch_id)
            erased.append(info.batch_id)
    return erased
