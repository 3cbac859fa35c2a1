"""Governing a release: a consumer's request, M-of-N steward decisions over its manifest hash, then the build.

Errors (one root, each message says what to do next; none of them changes anything)::

    ReleaseError
     +-- UnknownConsumer        the request's key is not in the release policy's [consumers.keys]
     +-- BadSignature           a request, decision or use whose signature does not verify
     +-- PurposeNotCovered      no consent receipt in the period lists the purpose
     +-- BelowK                 a category has fewer than k distinct subjects (counts in the message)
     +-- UnknownRelease         no request with that id
     +-- ApprovalMismatch       a decision over another manifest hash, or by a key that is no steward
     +-- ManifestTampered       the stored manifest no longer hashes to what was requested and approved
     +-- NotApproved            a build before the quorum approved, or after a rejection

Steward decision, signed message (version 1; release ids are 32 hex digits, hashes 64)::

    b"consentry-release-approve-v1\\0" || release_id || manifest_sha256 || decision     (approve|reject)

Its own prefix, not the batch approvals': a release decision can never be replayed as a batch's, nor the
reverse. Counting follows ``protocol.approval``'s rules: only the store's own steward keys, each once; one
rejection stops the release.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import Field

from protocol import domains
from protocol.approval import Decision
from protocol.auditlog import LogEntry, LogReceipt
from protocol.fields import (
    BatchId,
    EpochSeconds,
    PublicKey32,
    Sha256Hex,
    Signature64,
    Versioned,
    b64decode,
    b64encode,
)
from protocol.manifest import read_manifest
from protocol.signing import Signer, is_valid_signature
from protocol.stewards import StewardConfig
from store.audit import append_entry
from store.backend import StoreBackend, StoredRecord, StoreTx
from store.keys import StoreKeys
from store.releases import governance_db as db
from store.releases.consumers import ReleasePolicy
from store.releases.requests import ReleaseRequest, below_k, manifest_sha256, release_manifest, request_is_valid

RELEASE_APPROVE_V1 = domains.RELEASE_APPROVE_V1


class ReleaseError(Exception):
    """Root of the release errors (see the module docstring)."""


class UnknownConsumer(ReleaseError):
    pass


class BadSignature(ReleaseError):
    pass


class PurposeNotCovered(ReleaseError):
    pass


class BelowK(ReleaseError):
    pass


class UnknownRelease(ReleaseError):
    pass


class ApprovalMismatch(ReleaseError):
    pass


class ManifestTampered(ReleaseError):
    pass


class NotApproved(ReleaseError):
    pass


class ReleaseDecision(Versioned):
    """One steward's signed decision on a release. ``reason`` and ``created`` are audit metadata, unsigned."""

    release_id: BatchId
    manifest_sha256: Sha256Hex
    decision: Decision
    steward_key: PublicKey32
    signature: Signature64
    reason: str | None = Field(default=None, max_length=500)
    created: EpochSeconds


def decision_message(release_id: str, manifest_hash: str, decision: str) -> bytes:
    return RELEASE_APPROVE_V1 + release_id.encode("ascii") + manifest_hash.encode("ascii") + decision.encode("ascii")


def sign_decision(
    steward: Signer, release_id: str, manifest_hash: str, decision: Decision, *, created: int, reason: str | None = None
) -> ReleaseDecision:
    if decision == "reject" and not reason:
        raise ValueError("a rejection needs a reason")
    return ReleaseDecision(
        v=1,
        release_id=release_id,
        manifest_sha256=manifest_hash,
        decision=decision,
        steward_key=b64encode(steward.public_bytes),
        signature=b64encode(steward.sign(decision_message(release_id, manifest_hash, decision))),
        reason=reason,
        created=created,
    )


@dataclass(frozen=True)
class ReleaseStatus:
    release_id: str
    state: str  # review | approved | rejected | built
    manifest: dict[str, Any]
    manifest_sha256: str
    approved_by: tuple[str, ...]
    rejected_by: tuple[str, ...]
    required: int
    log: LogReceipt | None = None  # the request's audit-log receipt (names the manifest hash)


def _consumer_name(policy: ReleasePolicy, key: str) -> str:
    name = policy.consumers.name_of(key)
    if name is None:
        raise UnknownConsumer(
            "this key is not a data consumer of this store. Ask the store operator to add your public key "
            "under [consumers.keys] in the release policy (consentry dataset keygen prints it)."
        )
    return name


def request_release(
    backend: StoreBackend,
    keys: StoreKeys,
    policy: ReleasePolicy,
    stewards: StewardConfig,
    request: ReleaseRequest,
    *,
    now: int,
) -> ReleaseStatus:
    """Check and record a request, compute its manifest, log it; refuse (writing nothing) when it cannot pass."""
    consumer = _consumer_name(policy, request.consumer_key)
    if not request_is_valid(request):
        raise BadSignature("the request's signature does not verify under the consumer key it names")
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        earlier = db.get_release(tx, request.release_id)
        if earlier is not None:
            if earlier.request_json != request.model_dump_json():
                raise ReleaseError(f"release id {request.release_id} is taken by another request; use a new id")
            return _status(tx, earlier, stewards)
        manifest = release_manifest(
            tx, request, policy, consumer=consumer, stewards_required=stewards.approvals_required, now=now
        )
        if not manifest["eligible"]:
            raise PurposeNotCovered(_nothing_eligible(manifest, request.purpose))
        short = below_k(manifest)
        if short:
            counts = ", ".join(f"{c}: {n} subjects" for c, n in sorted(short.items()))
            raise BelowK(
                f"refused: every released category needs at least {policy.k_min} distinct subjects, and {counts}. "
                "Ask for a longer period or leave those categories out."
            )
        digest = manifest_sha256(manifest)
        row = db.ReleaseRow(
            request.release_id,
            request.consumer_key,
            request.model_dump_json(),
            json.dumps(manifest),
            digest,
            "review",
            now,
            None,
        )
        db.insert_release(tx, row)
        body = {
            "release_id": request.release_id,
            "consumer": consumer,
            "purpose": request.purpose,
            "categories": manifest["categories"],
            "manifest_sha256": digest,
            "records": sum(v["records"] for v in manifest["eligible"].values()),
        }
        log = append_entry(tx, keys.log, LogEntry(v=1, kind="release-request", time=now, body=body))
        db.set_request_log(tx, request.release_id, log.model_dump_json())
        status = _status(tx, row, stewards)
    return status


def _nothing_eligible(manifest: dict[str, Any], purpose: str) -> str:
    """Why a request found nothing to release, by reason, with the counts."""
    excluded = manifest["excluded"]
    reasons = {
        "purpose": f"their consent receipts do not list {purpose!r}",
        "retention": "their retention ran out",
        "erasure": "their subjects erased",
    }
    parts = [
        f"{sum(v['records'] for v in excluded[reason].values())} records because {words}"
        for reason, words in reasons.items()
        if excluded[reason] and reason != "erasure"
    ]
    if not parts:
        return (
            f"no stored record in the period can be released for purpose {purpose!r}: nothing was stored in that "
            "period for these categories. Ask for another period."
        )
    return (
        f"no stored record in the period can be released for purpose {purpose!r}: excluded "
        + "; ".join(parts)
        + ". Ask for a purpose the employees consented to, or a more recent period."
    )


def show_release(backend: StoreBackend, stewards: StewardConfig, release_id: str) -> ReleaseStatus:
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        return _status(tx, _release(tx, release_id), stewards)


def list_releases(backend: StoreBackend, stewards: StewardConfig) -> list[ReleaseStatus]:
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        return [_status(tx, row, stewards) for row in db.list_releases(tx)]


def decide_release(
    backend: StoreBackend, keys: StoreKeys, stewards: StewardConfig, decision: ReleaseDecision, *, now: int
) -> ReleaseStatus:
    """Count one steward's decision, signed over the manifest hash the steward was shown."""
    names = {key: name for name, key in stewards.keys.items()}
    if decision.steward_key not in names:
        raise ApprovalMismatch("this key is not one of the store's stewards; the decision was not counted")
    if not is_valid_signature(
        b64decode(decision.steward_key),
        decision_message(decision.release_id, decision.manifest_sha256, decision.decision),
        b64decode(decision.signature),
    ):
        raise BadSignature("the decision's signature does not verify; nothing was recorded")
    with backend.transaction() as tx:
        db.ensure_tables(tx)
        row = _release(tx, decision.release_id)
        _check_untampered(row)
        if decision.manifest_sha256 != row.manifest_sha256:
            raise ApprovalMismatch(
                "this decision is over another manifest hash than the store's for this release; "
                "run `consentry dataset show` again and decide on what it shows"
            )
        if row.state != "review":
            raise ReleaseError(f"release {row.release_id} is already {row.state}; nothing was recorded")
        if db.insert_decision(
            tx, row.release_id, decision.steward_key, decision.decision, decision.model_dump_json(), now
        ):
            kind: Literal["release-approval", "release-rejection"] = (
                "release-approval" if decision.decision == "approve" else "release-rejection"
            )
            body = {
                "release_id": row.release_id,
                "manifest_sha256": row.manifest_sha256,
                "steward": names[decision.steward_key],
                "decision": decision.decision,
            }
            append_entry(tx, keys.log, LogEntry(v=1, kind=kind, time=now, body=body))
            status = _status(tx, row, stewards)
            if status.rejected_by:
                db.set_release_state(tx, row.release_id, "rejected")
            elif len(status.approved_by) >= status.required:
                db.set_release_state(tx, row.release_id, "approved")
        return _status(tx, _release(tx, row.release_id), stewards)


class ReleaseSink(Protocol):
    """Where a built release's rows go (the release table; a Parquet folder until it is merged)."""

    def write(
        self,
        release_id: str,
        records: list[tuple[StoredRecord, dict[str, Any]]],
        *,
        retention_days: int,
        erased: Callable[[], Collection[str]],
    ) -> dict[str, Any]:
        """Write the rows; ``erased()`` names the records' subjects erased since they were read."""
        ...

    def committed(self, release_id: str) -> dict[str, Any] | None:
        """What an earlier ``write`` of ``release_id`` committed (as ``write`` returns it), or None."""
        ...


@dataclass(frozen=True)
class BuildResult:
    release_id: str
    rows: int
    subjects: int
    written: dict[str, Any]
    log: LogReceipt


def build_release(
    backend: StoreBackend,
    keys: StoreKeys,
    stewards: StewardConfig,
    release_id: str,
    sink: ReleaseSink,
    *,
    now: int,
    retention_days: int,
    progress: Callable[[int], None] | None = None,
) -> BuildResult:
    """Build an approved release: its batches' records, re-checked one by one, into ``sink``; then log it.

    Re-checked at build time, record by record: the record's own consent receipt lists the purpose, its
    window ended within retention, and its subject still has a key (an erasure since the request shreds
    it, and such records are skipped). The stored manifest must still hash to what the quorum approved.

    The retention used -- here, and by the release table afterwards, which drops rows as they pass it --
    is the one the stewards approved in the manifest, or the policy's ``retention_days`` now if shorter.
    """
    from store.record_keys import RecordKeyring, seal_legacy_records

    with backend.transaction() as tx:
        db.ensure_tables(tx)
        row = _release(tx, release_id)
        _check_untampered(row)
        status = _status(tx, row, stewards)
        if row.state == "built":
            raise ReleaseError(f"release {release_id} is already built; read it, do not build it twice")
        if status.rejected_by or len(status.approved_by) < status.required:
            raise NotApproved(
                f"release {release_id} has {len(status.approved_by)} of {status.required} steward approvals"
                + (" and was rejected" if status.rejected_by else "")
                + "; it cannot be built"
            )
        request = ReleaseRequest.model_validate_json(row.request_json)
        manifest = json.loads(row.manifest_json)
        covering = _covering_receipts(tx, manifest["batches"], request.purpose)
    keyring = RecordKeyring(keys.records)
    keyring.rotate_if_due(backend)
    seal_legacy_records(backend, keyring, now)
    retention_days = min(int(manifest.get("retention_days", retention_days)), retention_days)
    cutoff = now - retention_days * 86_400
    picked: list[tuple[StoredRecord, dict[str, Any]]] = []
    for category in manifest["categories"]:
        for start in range(0, len(manifest["batches"]), 200):
            chunk = manifest["batches"][start : start + 200]
            with backend.transaction() as tx:
                opened = list(keyring.open_records(tx, tx.iter_records(category, chunk)))
            picked += [
                (r, body)
                for r, body in opened
                if body["receipt_id"] in covering.get(r.batch_id, ()) and body["end"] > cutoff
            ]
            if progress is not None:
                progress(len(chunk))
    if not picked:
        raise ReleaseError(f"release {release_id} would be empty (every record was erased or expired); nothing built")
    everyone = sorted({r.subject for r, _ in picked})

    def erased() -> list[str]:  # an employee may erase while the records are read: their keys are gone
        with backend.transaction() as tx:
            return [s for s in everyone if tx.get_wrapped_key(s)[0] is None]

    # A build killed after the sink committed the rows and before the store recorded them (two
    # transactions) left the rows in place: record that build, never write them twice.
    written = sink.committed(release_id) or sink.write(release_id, picked, retention_days=retention_days, erased=erased)
    gone = set(erased())
    picked = [(r, body) for r, body in picked if r.subject not in gone]
    subjects = [s for s in everyone if s not in gone]
    with backend.transaction() as tx:
        db.insert_subjects(tx, release_id, subjects)
        db.set_release_state(tx, release_id, "built", built_at=now)
        body = {
            "release_id": release_id,
            "manifest_sha256": row.manifest_sha256,
            "rows": len(picked),
            "subjects": len(subjects),
            "approved_by": list(status.approved_by),
        }
        log = append_entry(tx, keys.log, LogEntry(v=1, kind="release-build", time=now, body=body))
    return BuildResult(release_id, len(picked), len(subjects), written, log)


def _covering_receipts(tx: StoreTx, batch_ids: list[str], purpose: str) -> dict[str, set[str]]:
    """Per batch, the receipt ids whose purposes list ``purpose`` (a record under any other is left out)."""
    covering: dict[str, set[str]] = {}
    for batch_id in batch_ids:
        batch = tx.get_batch(batch_id)
        if batch is None or batch.manifest_json is None:
            continue  # erased since the request
        manifest = read_manifest(batch.manifest_json)
        covering[batch_id] = {r.receipt_id for r in manifest.consent_receipts if purpose in r.purposes}
    return covering


def _release(tx: StoreTx, release_id: str) -> db.ReleaseRow:
    row = db.get_release(tx, release_id)
    if row is None:
        raise UnknownRelease(f"no release {release_id}. Run: consentry dataset list")
    return row


def _check_untampered(row: db.ReleaseRow) -> None:
    if manifest_sha256(json.loads(row.manifest_json)) != row.manifest_sha256:
        raise ManifestTampered(
            f"the stored manifest of release {row.release_id} no longer matches the hash it was requested and "
            "approved under; it was changed outside Consentry. Nothing was counted or built: tell the operator "
            "and have the consumer request it again."
        )


def _status(tx: StoreTx, row: db.ReleaseRow, stewards: StewardConfig) -> ReleaseStatus:
    names = {key: name for name, key in stewards.keys.items()}
    approved: list[str] = []
    rejected: list[str] = []
    for raw in db.decisions_json(tx, row.release_id):
        decision = ReleaseDecision.model_validate_json(raw)
        name = names.get(decision.steward_key)
        if name is None or decision.manifest_sha256 != row.manifest_sha256:
            continue  # a steward since removed from the policy no longer counts
        (approved if decision.decision == "approve" else rejected).append(name)
    logged = db.request_log(tx, row.release_id)
    return ReleaseStatus(
        row.release_id,
        row.state,
        json.loads(row.manifest_json),
        row.manifest_sha256,
        tuple(approved),
        tuple(rejected),
        stewards.approvals_required,
        LogReceipt.model_validate_json(logged) if logged else None,
    )


__all__ = [
    "ApprovalMismatch",
    "BadSignature",
    "BelowK",
    "BuildResult",
    "ManifestTampered",
    "NotApproved",
    "PurposeNotCovered",
    "ReleaseDecision",
    "ReleaseError",
    "ReleaseSink",
    "ReleaseStatus",
    "UnknownConsumer",
    "UnknownRelease",
    "build_release",
    "decide_release",
    "list_releases",
    "request_release",
    "show_release",
    "sign_decision",
]
