"""The store's rules for batches: review queue, steward decisions, verified upload and ingest, erasure.

Every check that can be made without the store's private key -- device signature, approvals counted
under the store's own steward config, manifest digest, the device's ``(seq, prev_batch_hash)`` chain,
schema version, ledger checkpoint -- is made before decryption; the decrypted payload is then checked
against the manifest and the privacy checks are re-run before a single record is written. The batch's
records, its state, the audit-log entry and its receipt are committed in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.approval import Approval, CountedDecision, Tally, approval_is_valid, reason_digest, tally
from protocol.auditlog import EntryKind, LogEntry, LogReceipt, subject_digest
from protocol.batch import SealedBatch, header_mismatches
from protocol.checkpoint import LedgerCheckpoint, extend_chain, verify_checkpoint
from protocol.erasure import ErasureReceipt, ErasureRequest, sign_erasure_receipt, verify_erasure
from protocol.errors import ConsentryError, InvalidRecord, UnsupportedVersion
from protocol.fields import b64encode
from protocol.ledger_chain import LEDGER_START_HASH
from protocol.manifest import BatchManifest, BatchManifestV1, manifest_digest, read_manifest
from protocol.payload import decode_payload, payload_digest
from protocol.privacy import REQUIRED_CHECKS, STORE_CHECKS, run_privacy_checks
from protocol.sealing import open_sealed, verify_batch_signature
from protocol.signing import key_id
from protocol.store_api import BatchReview, BatchStatus, CheckpointAck, QueueItem
from protocol.store_errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable, Unprocessable
from protocol.windows import SCHEMA_VERSION
from store import review_set_storage
from store.audit import DEVICE_FREE_LEAF_FORMAT, append_entry
from store.auth import Principal
from store.backend import TERMINAL_STATES, BatchRow, DeviceRow, SealedRecord, StoreBackend, StoreTx, UploadView
from store.keys import StoreKeys
from store.record_keys import RecordKeyring, seal_legacy_records
from store.releases.lineage import on_erasure as erasure_lineage
from store.settings import StoreClock, StoreSettings

# Uploads in their CPU-heavy steps (signature, checks, decryption, sealing) at once in one store process.
# The server runs each request in a thread of one interpreter, so more never run Python faster; they only
# contend for the GIL with the upload holding the audit log's lock, which waits for it after every database
# answer (CPython hands the GIL over in 5 ms slices): with 40 threads computing, that lock was held for tens
# of milliseconds per batch, and it serialises every store process on the database. Two: one computes
# while one waits on the database.
_CHECKING_SLOTS = 2

_TERMINAL_REFUSALS: dict[str, tuple[str, str]] = {
    "stored": ("already_stored", "this batch is already stored"),
    "rejected": ("batch_rejected", "a steward rejected this batch"),
    "erased": ("batch_erased", "the subject of this batch was erased"),
    "withdrawn": ("batch_withdrawn", "the device withdrew this batch; it will never be uploaded"),
}


@dataclass(frozen=True)
class _Verified:
    """What the pre-ingest checks established about an upload."""

    manifest: BatchManifest
    records: tuple[dict[str, Any], ...]
    payload: bytes


class StoreService:
    def __init__(
        self,
        backend: StoreBackend,
        keys: StoreKeys,
        settings: StoreSettings,
        clock: StoreClock,
        *,
        erase_from_releases: Callable[[str], AbstractContextManager[tuple[str, ...]]] | None = None,
    ) -> None:
        # erase_from_releases(subject_digest): the release table's rows of the subject go, and the table stays
        # locked until the block ends (store/releases/governance_sink.release_table_eraser)
        self.erase_from_releases = erase_from_releases
        self.backend = backend
        self.keys = keys
        self.settings = settings
        self.clock = clock
        self.record_keys = RecordKeyring(keys.records)
        self._checking = threading.BoundedSemaphore(_CHECKING_SLOTS)
        review_set_storage.ensure_tables(backend)  # set approvals count in _tally (store.review_sets)
        self.record_keys.rotate_if_due(backend)  # an erasure whose KEK rotation a crash or an error cut short
        seal_legacy_records(backend, self.record_keys, clock.now())  # a store from before records were sealed

    # review queue ------------------------------------------------------------------------------------------
    def submit_manifest(self, who: Principal, manifest: BatchManifest) -> BatchStatus:
        """Queue ``manifest`` for review, bound to the device that sent it (``who``, authenticated).

        A version-2 manifest names no device: the batch row records ``who``, and only a header signed by
        that device can ship it (``upload``). A version-1 manifest (older agents) must name ``who``.
        """
        if isinstance(manifest, BatchManifestV1) and manifest.device_kid != who.kid:
            raise Forbidden("device_mismatch", "a device submits only its own manifests")
        if manifest.schema_version != SCHEMA_VERSION:
            raise Unprocessable(
                "schema_version_unsupported",
                f"record schema {manifest.schema_version} (store has {SCHEMA_VERSION})",
            )
        self._check_manifest_checks(manifest)
        digest = manifest_digest(manifest)
        now = self.clock.now()
        with self.backend.transaction() as tx:
            device = self._device(tx, who.kid, lock=True)
            existing = tx.get_batch(manifest.batch_id, lock=True)
            if existing is not None:
                if existing.manifest_sha256 == digest and existing.device_kid == who.kid:
                    return self._status(tx, existing, device)  # a retried submission
                raise Conflict("batch_id_reused", "this batch id names another manifest")
            if manifest.seq != device.last_seq + 1 or manifest.prev_batch_hash != device.last_manifest_hash:
                raise Conflict(
                    "chain_broken",
                    f"expected seq {device.last_seq + 1} after manifest {device.last_manifest_hash[:16]}...",
                )
            subject = subject_digest(manifest.subject)
            owner = tx.subject_owner(subject)
            if owner is not None and owner != who.kid:
                raise Forbidden("subject_not_yours", "this subject's batches come from another device")
            if owner is None:
                tx.insert_subject(subject, who.kid)
            row = BatchRow(
                batch_id=manifest.batch_id,
                device_kid=who.kid,
                seq=manifest.seq,
                subject_digest=subject,
                manifest_json=manifest.model_dump_json(),
                manifest_sha256=digest,
                state="review",
                submitted_at=now,
            )
            tx.insert_batch(row)
            tx.set_device_chain(who.kid, manifest.seq, digest)
            return self._status(tx, row, device)

    @staticmethod
    def _check_manifest_checks(manifest: BatchManifest) -> None:
        names = {c.name for c in manifest.privacy_checks}
        missing = [n for n in REQUIRED_CHECKS if n not in names]
        failed = manifest.failed_checks()
        if missing or failed:
            raise Unprocessable("privacy_check_failed", f"missing checks {missing}, failed checks {list(failed)}")
        covered = {r.category for r in manifest.consent_receipts}
        uncovered = [str(c) for c, n in manifest.record_counts.items() if n and c not in covered]
        if uncovered:
            raise Unprocessable("privacy_check_failed", f"no consent receipt for categories {uncovered}")

    def batch_status(self, who: Principal, batch_id: str) -> BatchStatus:
        with self.backend.transaction() as tx:
            batch = self._batch(tx, batch_id)
            if who.role == "device" and batch.device_kid != who.kid:
                raise NotFound("unknown_batch", "no such batch for this device")
            return self._status(tx, batch, self._device(tx, batch.device_kid))

    def queue(self, states: tuple[str, ...] = ("review", "approved")) -> list[QueueItem]:
        items = []
        with self.backend.transaction() as tx:
            for batch in tx.list_batches(states, self.settings.queue_limit):
                if batch.manifest_json is None:
                    continue
                manifest = read_manifest(batch.manifest_json)
                t = self._tally(tx, batch, self._device(tx, batch.device_kid))
                items.append(
                    QueueItem(
                        batch_id=batch.batch_id,
                        subject=manifest.subject,
                        seq=batch.seq,
                        submitted_at=batch.submitted_at,
                        period_start=manifest.period_start,
                        period_end=manifest.period_end,
                        record_counts=manifest.record_counts,
                        state=batch.state,  # type: ignore[arg-type]
                        approvals=len(t.approved_by),
                        approvals_required=t.required,
                    )
                )
        return items

    def review(self, batch_id: str) -> BatchReview:
        with self.backend.transaction() as tx:
            batch = self._batch(tx, batch_id)
            if batch.manifest_json is None:  # erased or withdrawn: the manifest is gone
                raise Conflict(*_TERMINAL_REFUSALS.get(batch.state, _TERMINAL_REFUSALS["erased"]))
            manifest = read_manifest(batch.manifest_json)
            status = self._status(tx, batch, self._device(tx, batch.device_kid))
            decisions = tuple(Approval.model_validate_json(a) for a in tx.approvals_json(batch_id))
        return BatchReview(
            status=status, manifest=manifest, privacy_checks=manifest.privacy_checks, decisions=decisions
        )

    def decide(self, who: Principal, batch_id: str, approval: Approval) -> BatchStatus:
        if approval.batch_id != batch_id:
            raise Unprocessable("malformed_request", "the approval names another batch")
        if approval.steward_key != b64encode(who.public_key):
            raise Forbidden("not_a_steward", "a steward submits only decisions signed with their own key")
        if not approval_is_valid(approval):
            raise Unprocessable("approval_signature_invalid", "the approval signature does not verify")
        now = self.clock.now()
        with self.backend.transaction() as tx:
            batch = self._batch(tx, batch_id, lock=True)
            if approval.manifest_sha256 != batch.manifest_sha256:
                raise Unprocessable("approval_signature_invalid", "the approval is for another manifest")
            self._refuse_terminal(batch)
            if not tx.insert_approval(
                batch_id, approval.steward_key, approval.decision, approval.model_dump_json(), now
            ):
                raise Conflict("already_decided", "this steward already decided on this batch")
            device = self._device(tx, batch.device_kid)
            t = self._tally(tx, batch, device)
            state = {"approved": "approved", "rejected": "rejected", "pending": "review"}[t.status]
            if state != batch.state:
                tx.update_batch(batch_id, state=state)
            counted = approval.steward_key not in {i.steward_key for i in t.ignored}
            kind: EntryKind = "approval" if approval.decision == "approve" else "rejection"
            body = {
                "batch_id": batch_id,
                "manifest_sha256": batch.manifest_sha256,
                "steward_kid": key_id(who.public_key),
                "counted": counted,
                "state": state,
            }
            if kind == "rejection" and approval.reason:  # the log names the reason by a salted digest, never its text
                body["reason_sha256"] = reason_digest(approval.reason, approval.signature)
            append_entry(tx, self.keys.log, LogEntry(v=1, kind=kind, time=now, body=body))
            return self._status(tx, self._batch(tx, batch_id), device)

    # upload ------------------------------------------------------------------------------------------------
    def upload(self, who: Principal, batch: SealedBatch) -> LogReceipt:
        """Verify, decrypt, check and seal outside any lock; then one short transaction stores it.

        1. the device signature (no database);
        2. a read-only transaction: every check that needs no decryption (``_check_before_decrypt``), and
           the subject's data key if it has one;
        3. no transaction: HPKE decryption, payload digest, privacy checks over every record, AES-GCM
           sealing of every record under the subject key;
        4. the writing transaction (``_ingest``): device and batch rows locked, what can have changed since
           step 2 checked again, records copied in, then -- last, as the audit log's lock is held until the
           commit -- the log append and the batch's receipt.
        """
        header = batch.header
        with self._checking:  # steps 1-3: see _CHECKING_SLOTS
            sealed = _signed_by_caller(who, header.device_kid, lambda key: verify_batch_signature(batch, key), "batch")
            header_digest = header.digest()
            with self.backend.transaction() as tx:
                view = _found(tx.upload_view(header.batch_id, who.kid), "unknown_batch", _NO_BATCH)
                row = view.batch
                previous = self._already_stored(row, who, header_digest)
                if previous is not None:
                    return previous
                manifest, decided = self._check_before_decrypt(tx, view, who, batch)
                key = self.record_keys.subject_key(
                    tx, row.subject_digest, create=False, read=(view.wrapped_key, view.kek_id)
                )
            verified = self._decrypt_and_check(batch, sealed, manifest)
            records = (
                None
                if key is None
                else self.record_keys.seal_with(key, row.batch_id, row.subject_digest, verified.records)
            )
        return self._ingest(who, batch, header_digest, verified, decided, records)

    @staticmethod
    def _already_stored(row: BatchRow, who: Principal, header_digest: str) -> LogReceipt | None:
        if row.device_kid != who.kid:
            raise NotFound("unknown_batch", "no such batch for this device")
        if row.state != "stored":
            return None
        if row.header_sha256 != header_digest or row.receipt_json is None:
            raise Conflict("batch_id_reused", "this batch was stored with another header")
        return LogReceipt.model_validate_json(row.receipt_json)  # a retry gets the same receipt

    def _check_before_decrypt(
        self, tx: StoreTx, view: UploadView, who: Principal, batch: SealedBatch
    ) -> tuple[BatchManifest, int]:
        """Every check that needs no decryption; returns the manifest and how many decisions were counted."""
        row = view.batch
        self._refuse_terminal(row)
        assert row.manifest_json is not None  # only erased batches lose it, and those were refused
        manifest = read_manifest(row.manifest_json)
        wrong = header_mismatches(batch.header, manifest)
        if wrong:
            raise Unprocessable("header_mismatch", f"header fields disagree with the approved manifest: {list(wrong)}")
        device = _found(view.device, "unknown_key", _NOT_ENROLLED)
        decisions = review_set_storage.decisions(tx, row.batch_id)
        self._check_approved(self._tally_of(decisions, row, device))
        if view.open_before:
            raise Conflict("chain_out_of_order", "an earlier batch of this device is not stored or closed yet")
        self._check_upload_checkpoint(device, batch)
        return manifest, len(decisions)

    def _recheck_under_lock(
        self, tx: StoreTx, row: BatchRow, device: DeviceRow, batch: SealedBatch, decided: int
    ) -> None:
        """What can have changed since ``_check_before_decrypt``, with the device and batch rows now locked.

        The manifest does not change while the batch is not final. Decisions are only ever added (never
        updated or deleted), so the same count means the same decisions and the same tally; a new one
        (a steward's late rejection, say) means the batch is counted again. A device's earlier batches
        only ever move into a final state and new batches only come after it, so "no earlier open batch"
        stays true. The device's witnessed checkpoint can have moved: checked again on the locked row.
        """
        self._refuse_terminal(row)
        if review_set_storage.decision_count(tx, row.batch_id) != decided:
            self._check_approved(self._tally(tx, row, device))
        self._check_upload_checkpoint(device, batch)

    @staticmethod
    def _check_approved(t: Tally) -> None:
        if t.status == "rejected":
            raise Conflict("batch_rejected", "a steward rejected this batch")
        if t.status != "approved":
            raise Conflict("not_approved", f"{len(t.approved_by)} of {t.required} steward approvals so far")

    def _check_upload_checkpoint(self, device: DeviceRow, batch: SealedBatch) -> None:
        ref = batch.header.ledger_checkpoint
        self._check_checkpoint(device, ref.seq, ref.head_hash)
        if device.checkpoint_seq is not None and ref.seq > device.checkpoint_seq:
            raise Conflict(
                "checkpoint_unproven",
                f"ledger seq {ref.seq} is above the witnessed {device.checkpoint_seq}; submit that checkpoint with "
                "its extension proof first (POST /v1/checkpoints)",
            )

    def _decrypt_and_check(self, batch: SealedBatch, sealed: bytes, manifest: BatchManifest) -> _Verified:
        try:  # the signature over these bytes was verified first (upload)
            payload = open_sealed(sealed, batch.header, self.keys.seal)
        except InvalidRecord:
            raise Unprocessable("batch_undecryptable", "the batch does not decrypt with this store's key") from None
        if payload_digest(payload) != manifest.payload_sha256 or len(payload) != manifest.payload_bytes:
            raise Unprocessable("payload_mismatch", "the payload is not the one the manifest describes")
        try:
            decoded = decode_payload(payload)
        except (ValueError, UnsupportedVersion) as exc:
            raise Unprocessable("payload_mismatch", str(exc)) from None
        if decoded.batch_id != manifest.batch_id:
            raise Unprocessable("payload_mismatch", "the payload names another batch")
        checks = run_privacy_checks(
            decoded.records, manifest.consent_receipts, manifest.record_counts, names=STORE_CHECKS
        )
        failed = [c.name for c in checks if not c.passed]
        if failed:
            raise Unprocessable("privacy_check_failed", f"the payload fails {failed}")
        return _Verified(manifest, decoded.records, payload)

    def _ingest(
        self,
        who: Principal,
        batch: SealedBatch,
        header_digest: str,
        verified: _Verified,
        decided: int,
        records: list[SealedRecord] | None,
    ) -> LogReceipt:
        """The writing transaction. ``records``: sealed under the subject key read before, or None when the
        subject had none yet (its first batch: the key is made here, where its row commits with the records)."""
        header = batch.header
        now = self.clock.now()
        with self.backend.transaction() as tx:
            device = self._device(tx, who.kid, lock=True)  # lock order: device, then batch, then log
            row = self._batch(tx, header.batch_id, lock=True)
            previous = self._already_stored(row, who, header_digest)
            if previous is not None:
                return previous  # another store process finished it while we decrypted
            self._recheck_under_lock(tx, row, device, batch, decided)
            if records is None:
                records = self.record_keys.seal_batch(tx, row.batch_id, row.subject_digest, verified.records, now)
            tx.store_records(row, records)
            checkpoint = header.ledger_checkpoint
            entry = LogEntry(
                v=1,
                kind="batch-stored",
                time=now,
                body={  # leaf format 2: the subject, not the device (the batches table maps it for device reach)
                    "format": DEVICE_FREE_LEAF_FORMAT,
                    "batch_id": row.batch_id,
                    "subject_digest": row.subject_digest,
                    "manifest_sha256": row.manifest_sha256,
                    "header_sha256": header_digest,
                    "records": len(verified.records),
                },
            )
            # Pipelined (PostgreSQL): the checkpoint rows travel with the log lock and the log size, the
            # leaf with the node read, the nodes, head and batch row in one trip before the commit.
            with tx.pipelined():
                tx.insert_checkpoint(who.kid, checkpoint.seq, checkpoint.head_hash, header.created, now)
                if device.checkpoint_seq is None or checkpoint.seq > device.checkpoint_seq:
                    tx.set_device_checkpoint(who.kid, checkpoint.seq, checkpoint.head_hash)
                # Last: the log's lock (PostgreSQL: an advisory transaction lock) is held from here to the commit.
                receipt = append_entry(tx, self.keys.log, entry)
                tx.update_batch(
                    row.batch_id,
                    state="stored",
                    header_sha256=header_digest,
                    stored_at=now,
                    receipt_json=receipt.model_dump_json(),
                    record_count=len(verified.records),
                )
        return receipt

    # consent ledger witness --------------------------------------------------------------------------------
    def checkpoint(self, who: Principal, checkpoint: LedgerCheckpoint) -> CheckpointAck:
        _signed_by_caller(who, checkpoint.device_kid, lambda key: verify_checkpoint(checkpoint, key), "checkpoint")
        now = self.clock.now()
        with self.backend.transaction() as tx:
            device = self._device(tx, who.kid, lock=True)
            self._check_checkpoint(device, checkpoint.seq, checkpoint.head_hash)
            self._check_extension(tx, device, checkpoint)
            tx.insert_checkpoint(who.kid, checkpoint.seq, checkpoint.head_hash, checkpoint.epoch_seconds(), now)
            if device.checkpoint_seq is None or checkpoint.seq > device.checkpoint_seq:
                tx.set_device_checkpoint(who.kid, checkpoint.seq, checkpoint.head_hash)
        return CheckpointAck(device_kid=who.kid, seq=checkpoint.seq, head_hash=checkpoint.head_hash, witnessed_at=now)

    @staticmethod
    def _check_extension(tx: StoreTx, device: DeviceRow, checkpoint: LedgerCheckpoint) -> None:
        """A checkpoint above the witnessed one must prove, by its links, that its ledger extends it."""
        witnessed_seq, witnessed_hash = device.checkpoint_seq, device.checkpoint_hash
        if witnessed_seq is None or checkpoint.seq <= witnessed_seq:
            return  # the first one is taken on trust; equal and lower are _check_checkpoint's
        proof = checkpoint.proof
        if proof is None:
            raise Conflict(
                "checkpoint_unproven",
                f"ledger seq {checkpoint.seq} is above the witnessed {witnessed_seq}; send the entry links "
                "from a witnessed checkpoint as proof",
            )
        start = LEDGER_START_HASH if proof.from_seq == 0 else tx.checkpoint_hash(device.kid, proof.from_seq)
        if proof.from_seq > witnessed_seq or start is None:
            raise Conflict(
                "checkpoint_unproven", f"the proof must start at a witnessed checkpoint (0 or up to {witnessed_seq})"
            )
        if len(proof.links) != checkpoint.seq - proof.from_seq:
            raise Conflict(  # 409, not 422: the request is schema-valid, it does not fit this checkpoint
                "proof_malformed", f"the proof has {len(proof.links)} links; {checkpoint.seq - proof.from_seq} needed"
            )
        try:
            hashes = extend_chain(start, proof.links)
        except (ValueError, TypeError):
            raise Conflict("proof_malformed", "a link of the proof cannot be hashed") from None
        passes = witnessed_seq == proof.from_seq or hashes[witnessed_seq - proof.from_seq - 1] == witnessed_hash
        if not passes or hashes[-1] != checkpoint.head_hash:
            raise Conflict(
                "checkpoint_not_extending",
                f"the ledger at seq {checkpoint.seq} does not extend the one witnessed at seq {witnessed_seq} "
                "(it was rewritten)",
            )

    @staticmethod
    def _check_checkpoint(device: DeviceRow, seq: int, head_hash: str) -> None:
        if device.checkpoint_seq is None:
            return
        if seq < device.checkpoint_seq:
            raise Conflict("checkpoint_regressed", f"ledger seq {seq} is below the witnessed {device.checkpoint_seq}")
        if seq == device.checkpoint_seq and head_hash != device.checkpoint_hash:
            raise Conflict("checkpoint_forked", f"ledger seq {seq} was witnessed with another head hash")

    # erasure -----------------------------------------------------------------------------------------------
    def erase(self, who: Principal, request: ErasureRequest) -> ErasureReceipt:
        """Erase everything held under the request's subject; the receipt is bound to this request.

        The log key signs (request id, subject digest, scope, log index), so an answer replayed from
        another request or batch never passes for this one at the device.
        """
        _signed_by_caller(who, request.device_kid, lambda key: verify_erasure(request, key), "erasure")
        with self.backend.transaction() as tx:
            done = tx.get_erasure(request.request_id)
        receipt = self._earlier_erasure_receipt(done, request) if done else self._erase(who, request)
        try:
            self.record_keys.rotate_if_due(self.backend)  # a retried request finishes what an error cut short
        except (OSError, ConsentryError) as exc:
            raise Unavailable(
                "erasure_unfinished",
                f"the erasure is recorded, but the store could not replace its records key yet "
                f"({type(exc).__name__}); retry",
            ) from None
        return receipt

    def _erase(self, who: Principal, request: ErasureRequest) -> ErasureReceipt:
        subject = subject_digest(request.subject)
        now = self.clock.now()
        with self.backend.transaction() as tx:  # the same ownership check, before anything leaves the table
            owner = tx.subject_owner(subject)
        if owner is not None and owner != who.kid:
            raise Forbidden("subject_not_yours", "this subject's batches come from another device")
        # Released rows first (their own catalog, not this transaction): a crash after it erases too much, never
        # too little. The release table stays locked until the key is destroyed, so a build that read the
        # subject's records before this either is done (its rows are erased here) or sees the key gone.
        releases = self.erase_from_releases(subject) if self.erase_from_releases is not None else nullcontext(())
        with ExitStack() as held:
            try:
                rewritten = held.enter_context(releases)
            except Exception as exc:  # the table's files or catalog; the store has changed nothing yet
                raise Unavailable(
                    "erasure_unfinished",
                    f"the store could not erase from its release table yet ({type(exc).__name__}); "
                    "nothing of this erasure is recorded; retry",
                ) from None
            return self._erase_recorded(who, request, subject, now, rewritten)

    def _erase_recorded(
        self, who: Principal, request: ErasureRequest, subject: str, now: int, rewritten: tuple[str, ...]
    ) -> ErasureReceipt:
        """The store's part of an erasure, in one transaction (the release table's part is done)."""
        with self.backend.transaction() as tx:
            self._device(tx, who.kid, lock=True)
            done = tx.get_erasure(request.request_id)
            if done is not None:
                return self._earlier_erasure_receipt(done, request)  # the same request, at the same time
            owner = tx.subject_owner(subject)
            if owner is not None and owner != who.kid:
                raise Forbidden("subject_not_yours", "this subject's batches come from another device")
            batches = [b for b in tx.batches_of_subject(subject) if b.state != "erased"]
            records = tx.erase_records([b.batch_id for b in batches if b.state == "stored"])
            self.record_keys.shred(tx, subject)  # crypto-shred: copies of the ciphertext left on disk are unreadable
            for b in batches:
                tx.update_batch(b.batch_id, state="erased", manifest_json=None)
            exports = tx.mark_exports_with_subject(subject)
            body = {
                "request_id": request.request_id,
                "subject_digest": subject,
                "scope": "subject",
                "batches": len(batches),
                "records": records,
                "exports_marked": exports,
            }
            body.update(erasure_lineage(tx, subject, now).as_body())  # releases holding the subject, runs marked
            body["releases_rewritten"] = len(rewritten)
            logged = append_entry(tx, self.keys.log, LogEntry(v=1, kind="erasure", time=now, body=body))
            receipt = sign_erasure_receipt(self.keys.log, request, logged)
            tx.insert_erasure(request.request_id, subject, who.kid, receipt.model_dump_json(), now)
        return receipt

    def _earlier_erasure_receipt(self, stored: str, request: ErasureRequest) -> ErasureReceipt:
        """A retried request gets its first receipt; one kept as a bare log receipt (older stores) is bound now."""
        try:
            receipt = ErasureReceipt.model_validate_json(stored)
            logged_subject = receipt.subject_digest
        except ValueError:
            logged = LogReceipt.model_validate_json(stored)
            logged_subject = str(logged.entry.body.get("subject_digest"))
            receipt = sign_erasure_receipt(self.keys.log, request, logged)
        if logged_subject != subject_digest(request.subject):
            raise Conflict("request_id_reused", "this erasure request id was used for another subject")
        return receipt

    def withdraw(self, who: Principal, batch_id: str) -> BatchStatus:
        """The device erased a submitted batch before shipping it: close it so later batches can follow.

        Idempotent. A batch already stored cannot be withdrawn (a subject erasure removes it instead).
        """
        now = self.clock.now()
        with self.backend.transaction() as tx:
            device = self._device(tx, who.kid, lock=True)
            batch = self._batch(tx, batch_id, lock=True)
            if batch.device_kid != who.kid:
                raise NotFound("unknown_batch", "no such batch for this device")
            if batch.state == "stored":
                raise Conflict("already_stored", "the batch is stored; request an erasure of the subject instead")
            if batch.state in ("review", "approved"):
                tx.update_batch(batch_id, state="withdrawn", manifest_json=None)
                body = {"format": DEVICE_FREE_LEAF_FORMAT, "batch_id": batch_id, "subject_digest": batch.subject_digest}
                append_entry(tx, self.keys.log, LogEntry(v=1, kind="withdrawal", time=now, body=body))
            return self._status(tx, self._batch(tx, batch_id), device)

    # helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _device(tx: StoreTx, kid: str, *, lock: bool = False) -> DeviceRow:
        return _found(tx.get_device(kid, lock=lock), "unknown_key", _NOT_ENROLLED)

    @staticmethod
    def _batch(tx: StoreTx, batch_id: str, *, lock: bool = False) -> BatchRow:
        return _found(tx.get_batch(batch_id, lock=lock), "unknown_batch", _NO_BATCH)

    @staticmethod
    def _refuse_terminal(batch: BatchRow) -> None:
        """Refuse any further step on a batch in a final state (every one of TERMINAL_STATES)."""
        if batch.state in TERMINAL_STATES:
            code, message = _TERMINAL_REFUSALS[batch.state]
            raise Conflict(code, message)

    def _tally(self, tx: StoreTx, batch: BatchRow, device: DeviceRow) -> Tally:
        # single approvals and set inclusions
        return self._tally_of(review_set_storage.decisions(tx, batch.batch_id), batch, device)

    def _tally_of(self, approvals: Sequence[CountedDecision], batch: BatchRow, device: DeviceRow) -> Tally:
        return tally(
            approvals,
            self.settings.stewards,
            batch_id=batch.batch_id,
            manifest_sha256=batch.manifest_sha256,
            device_public_key=device.public_key,
        )

    def _status(self, tx: StoreTx, batch: BatchRow, device: DeviceRow) -> BatchStatus:
        t = self._tally(tx, batch, device)
        reasons = tuple(  # single rejections and a set's rejection of this batch alike
            d.reason or "" for d in review_set_storage.decisions(tx, batch.batch_id) if d.decision == "reject"
        )
        return BatchStatus(
            batch_id=batch.batch_id,
            state=batch.state,  # type: ignore[arg-type]
            seq=batch.seq,
            manifest_sha256=batch.manifest_sha256,
            approvals=len(t.approved_by),
            approvals_required=t.required,
            rejected_by=t.rejected_by,
            rejection_reasons=reasons if t.rejected_by else (),
        )


_NOT_ENROLLED = "this device is not enrolled"
_NO_BATCH = "no such batch; submit its manifest first"
_Row = TypeVar("_Row")
_T = TypeVar("_T")


def _found(row: _Row | None, code: str, message: str) -> _Row:
    """``row``, or the 404 that says which row is missing."""
    if row is None:
        raise NotFound(code, message)
    return row


# What a device sends under its own key: (refusal when it names another device, code and message when
# the signature does not verify).
_OWN_KEY_REFUSALS: dict[str, tuple[str, str, str]] = {
    "batch": (
        "a device uploads only its own batches",
        "batch_signature_invalid",
        "the batch signature does not verify",
    ),
    "checkpoint": (
        "a device submits only its own checkpoints",
        "checkpoint_signature_invalid",
        "the checkpoint signature does not verify",
    ),
    "erasure": (
        "a device erases only with its own key",
        "erasure_signature_invalid",
        "the erasure request signature does not verify",
    ),
}


def _signed_by_caller(who: Principal, device_kid: str, verify: Callable[[bytes], _T], what: str) -> _T:
    """A device acts only under its own key: ``what`` it sends names it, and ``verify(its key)`` accepts it
    (returns what ``verify`` returns)."""
    mismatch, code, message = _OWN_KEY_REFUSALS[what]
    if device_kid != who.kid:
        raise Forbidden("device_mismatch", mismatch)
    try:
        return verify(who.public_key)
    except UnsupportedVersion as exc:
        raise BadRequest("unsupported_version", str(exc)) from None
    except InvalidRecord:
        raise Unprocessable(code, message) from None
