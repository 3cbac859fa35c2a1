"""Review sets in the store: group pending batches, freeze a group into a set, and record a steward's
approval of a set as one inclusion proof per batch.

The store never trusts the steward's tool about which batches a signature covers, nor the tool the store:
the tool recomputes every manifest hash it was shown and the root over them, and signs that root; the
store rebuilds the tree from the members it froze, refuses the whole act unless the signed root is that
tree's, then verifies each batch's inclusion proof and that the batch still has the manifest hash of its
leaf before the approval counts. A batch not frozen into the set has no leaf, so no set approval can
ever approve it. M-of-N still holds per batch: ``protocol.approval.tally`` counts a batch's inclusion
like a single signed approval, one per steward.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocol.approval import reason_digest, tally
from protocol.auditlog import EntryKind, LogEntry
from protocol.errors import InvalidRecord
from protocol.fields import b64encode
from protocol.manifest import BatchManifest, manifest_digest, read_manifest
from protocol.review_set import (
    MAX_SET_SIZE,
    SetApproval,
    SetInclusion,
    SetMember,
    SetRejection,
    SetRejectionInclusion,
    inclusions,
    rejection_inclusions,
    set_root,
)
from protocol.review_set_api import (
    GroupKey,
    GroupSummary,
    PeriodFigures,
    ReviewSetView,
    SetEntry,
    SetOutcome,
    SetRejectionOutcome,
    day_of,
    figures,
    group_key,
)
from protocol.signing import key_id
from protocol.store_errors import Conflict, Forbidden, NotFound, Unprocessable
from store import review_set_storage as storage
from store.audit_append import append_entries
from store.auth import Principal
from store.backend import TERMINAL_STATES, DeviceRow, StoreBackend, StoreTx
from store.keys import StoreKeys
from store.settings import StoreClock, StoreSettings

PREVIOUS_SCAN = 5000  # most recent batches read to find the previous period's figures


class ReviewSets:
    def __init__(self, backend: StoreBackend, keys: StoreKeys, settings: StoreSettings, clock: StoreClock) -> None:
        self.backend = backend
        self.keys = keys
        self.settings = settings
        self.clock = clock
        storage.ensure_tables(backend)

    # grouping ----------------------------------------------------------------------------------------------
    def _pending(self, tx: StoreTx) -> list[tuple[str, str, BatchManifest]]:
        """(batch id, manifest hash, manifest) of every batch waiting for review, oldest first."""
        rows = tx.list_batches(("review",), MAX_SET_SIZE)
        return [
            (b.batch_id, b.manifest_sha256, read_manifest(b.manifest_json)) for b in rows if b.manifest_json is not None
        ]

    def groups(self) -> list[GroupSummary]:
        with self.backend.transaction() as tx:
            pending = self._pending(tx)
        counts: dict[str, tuple[GroupKey, int]] = {}
        for _, _, manifest in pending:
            key = group_key(manifest)
            name = key.model_dump_json()
            counts[name] = (key, counts.get(name, (key, 0))[1] + 1)
        ordered = sorted(counts.values(), key=lambda kv: (kv[0].day, kv[0].notices, kv[0].terms_sha256))
        return [GroupSummary(key=k, pending=n) for k, n in ordered]

    def create(self, who: Principal, key: GroupKey) -> ReviewSetView:
        """Freeze the batches of group ``key`` waiting for review now into a new set."""
        now = self.clock.now()
        set_id = uuid.uuid4().hex
        with self.backend.transaction() as tx:
            chosen = [
                SetMember(batch_id=batch_id, manifest_sha256=digest)
                for batch_id, digest, manifest in self._pending(tx)
                if group_key(manifest) == key
            ]
            if not chosen:
                raise NotFound("empty_group", "no batch of this day and these terms is waiting for review")
            storage.insert_set(tx, set_id, now, key_id(who.public_key), key.model_dump_json(), set_root(chosen), chosen)
        return self.view(set_id)

    # showing -----------------------------------------------------------------------------------------------
    def view(self, set_id: str) -> ReviewSetView:
        with self.backend.transaction() as tx:
            found = storage.get_set(tx, set_id)
            if found is None:
                raise NotFound("unknown_set", "no such review set; list them with: consentry steward set list")
            created, created_by, key_json, root = found
            entries = []
            for i, m in enumerate(storage.members(tx, set_id)):
                row = tx.get_batch(m.batch_id)
                manifest = None if row is None or row.manifest_json is None else row.manifest_json
                entries.append(
                    SetEntry(
                        leaf_index=i,
                        batch_id=m.batch_id,
                        manifest_sha256=m.manifest_sha256,
                        state="erased" if row is None else row.state,  # type: ignore[arg-type]
                        manifest=None if manifest is None else read_manifest(manifest),
                    )
                )
            key = GroupKey.model_validate_json(key_json)
            previous = self._previous(tx, key)
            approvals = tuple(storage.set_approvals(tx, set_id))
            rejections = tuple(storage.set_rejections(tx, set_id))
        return ReviewSetView(
            set_id=set_id,
            key=key,
            created=created,
            created_by=created_by,
            root=root,
            entries=tuple(entries),
            previous=previous,
            approvals=approvals,
            rejections=rejections,
            approvals_required=self.settings.stewards.approvals_required,
        )

    @staticmethod
    def _previous(tx: StoreTx, key: GroupKey) -> PeriodFigures | None:
        """Figures of the day before under the same terms, from the most recent batches the store holds."""
        day = datetime.strptime(key.day, "%Y-%m-%d").replace(tzinfo=UTC)
        before = day_of(int(day.timestamp()) - 86_400)
        rows = storage.recent_manifests_latest(tx, PREVIOUS_SCAN)
        chosen = []
        for raw in rows:
            if day_of(int(json.loads(raw)["period_start"])) != before:  # cheap filter before validating
                continue
            manifest = read_manifest(raw)
            k = group_key(manifest)
            if k.terms_sha256 == key.terms_sha256 and k.notices == key.notices:
                chosen.append(manifest)
        return figures(chosen)

    # approving and rejecting -------------------------------------------------------------------------------
    def approve(self, who: Principal, set_id: str, approval: SetApproval) -> SetOutcome:
        self._check_signed(who, set_id, approval)
        now = self.clock.now()
        with self.backend.transaction() as tx:
            members = self._members(tx, set_id)
            try:
                proofs = inclusions(approval, members)
            except InvalidRecord:
                raise _root_mismatch("approved") from None
            if any(r.steward_key == approval.steward_key for r in storage.set_rejections(tx, set_id)):
                raise Conflict("already_decided", "you rejected this review set; nothing changed")
            if not storage.insert_set_approval(tx, approval, now):
                raise Conflict("already_decided", "you already approved this review set")
            done = self._each_batch(tx, who, proofs, set_id, approval.root, {}, now)
        return SetOutcome(set_id=set_id, counted=done.counted, approved=done.approved, skipped=done.skipped)

    def reject(self, who: Principal, set_id: str, rejection: SetRejection) -> SetRejectionOutcome:
        """Record ``rejection`` as each open batch's rejection (one steward's rejection stops a batch)."""
        self._check_signed(who, set_id, rejection)
        now = self.clock.now()
        with self.backend.transaction() as tx:
            members = self._members(tx, set_id)
            try:
                proofs = rejection_inclusions(rejection, members)
            except InvalidRecord:
                raise _root_mismatch("rejected") from None
            if any(a.steward_key == rejection.steward_key for a in storage.set_approvals(tx, set_id)):
                # One decision per steward and batch, as for single decisions: an approval is never turned
                # into a rejection after the fact (other stewards' rejections still stop the batches).
                raise Conflict(
                    "already_decided",
                    "you approved this review set, so your rejection of it was not recorded; nothing changed. "
                    "Ask another data steward to reject the set or its batches.",
                )
            if not storage.insert_set_rejection(tx, rejection, now):
                raise Conflict("already_decided", "you already rejected this review set; nothing changed")
            extra = {"reason_sha256": reason_digest(rejection.reason, rejection.signature)}
            done = self._each_batch(tx, who, proofs, set_id, rejection.root, extra, now)
        return SetRejectionOutcome(set_id=set_id, rejected=done.rejected, skipped=done.skipped)

    @staticmethod
    def _check_signed(who: Principal, set_id: str, signed: SetApproval | SetRejection) -> None:
        what = "approval" if isinstance(signed, SetApproval) else "rejection"
        if signed.set_id != set_id:
            raise Unprocessable("set_mismatch", f"the {what} names another review set; nothing was changed")
        if signed.steward_key != b64encode(who.public_key):
            raise Forbidden("not_a_steward", f"a steward submits only {what}s signed with their own key")
        if not signed.is_valid():
            raise Unprocessable(f"{what}_signature_invalid", f"the set {what} signature does not verify")

    @staticmethod
    def _members(tx: StoreTx, set_id: str) -> list[SetMember]:
        if storage.get_set(tx, set_id, lock=True) is None:
            raise NotFound("unknown_set", "no such review set")
        return storage.members(tx, set_id)

    def _each_batch(
        self,
        tx: StoreTx,
        who: Principal,
        proofs: Sequence[SetInclusion | SetRejectionInclusion],
        set_id: str,
        root: str,
        extra: dict[str, str],
        now: int,
    ) -> _Done:
        """Record each batch's decision (its inclusion proof) where it still may count, with its log entry."""
        devices: dict[str, DeviceRow] = {}
        done = _Done()
        entries: list[LogEntry] = []
        steward_kid = key_id(who.public_key)
        for proof in proofs:
            if not proof.proves_inclusion():  # the store checks every batch's proof, not only the root
                done.skipped[proof.batch_id] = "inclusion proof does not verify"
                continue
            batch = tx.get_batch(proof.batch_id, lock=True)
            if batch is None or batch.state in TERMINAL_STATES:
                done.skipped[proof.batch_id] = f"batch is {batch.state if batch else 'gone'}"
                continue
            if batch.manifest_sha256 != proof.manifest_sha256:
                done.skipped[proof.batch_id] = "the batch's manifest is not the one shown"
                continue
            if any(d.steward_key == proof.steward_key for d in storage.decisions(tx, batch.batch_id)):
                done.skipped[proof.batch_id] = "you already decided on this batch"
                continue
            if not storage.insert_inclusion(tx, proof, now):
                done.skipped[proof.batch_id] = "you already decided on this batch"
                continue
            if batch.device_kid not in devices:
                device = tx.get_device(batch.device_kid)
                assert device is not None  # a batch's device row is never deleted (foreign key)
                devices[batch.device_kid] = device
            t = tally(
                storage.decisions(tx, batch.batch_id),
                self.settings.stewards,
                batch_id=batch.batch_id,
                manifest_sha256=batch.manifest_sha256,
                device_public_key=devices[batch.device_kid].public_key,
            )
            state = {"approved": "approved", "rejected": "rejected", "pending": "review"}[t.status]
            if state != batch.state:
                tx.update_batch(batch.batch_id, state=state)
            was_counted = proof.steward_key not in {i.steward_key for i in t.ignored}
            done.counted += was_counted
            done.approved += state == "approved"
            done.rejected += state == "rejected"
            body = {
                "batch_id": batch.batch_id,
                "manifest_sha256": batch.manifest_sha256,
                "steward_kid": steward_kid,
                "counted": was_counted,
                "state": state,
                "review_set": set_id,
                "set_root": root,
                "leaf_index": proof.leaf_index,
                **extra,
            }
            kind: EntryKind = "approval" if proof.decision == "approve" else "rejection"
            entries.append(LogEntry(v=1, kind=kind, time=now, body=body))
        append_entries(tx, self.keys.log, entries, now=now)
        return done


@dataclass
class _Done:
    """What one set decision did, batch by batch."""

    counted: int = 0
    approved: int = 0
    rejected: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


def _root_mismatch(what: str) -> Unprocessable:
    return Unprocessable(
        "set_root_mismatch",
        "the signed root is not this set's (it changed since it was shown, or the signature is for "
        f"another set); nothing was {what}. Show the set again.",
    )


def recomputed_members(view: ReviewSetView) -> list[SetMember]:
    """The members a steward's tool signs: each hash recomputed from the manifest shown, never taken on
    the store's word; ``ValueError`` when the store's list and its manifests disagree.

    A member without a manifest (its subject was erased, or the device withdrew it) keeps the store's
    hash: it is shown as such and can never be approved (the store refuses terminal batches).
    """
    found = []
    for i, e in enumerate(view.entries):
        if e.leaf_index != i:
            raise ValueError("the store listed the set's members out of order; nothing was signed")
        if e.manifest is not None:
            if e.manifest.batch_id != e.batch_id or manifest_digest(e.manifest) != e.manifest_sha256:
                raise ValueError(
                    f"the hash the store names for batch {e.batch_id} does not match the manifest it showed; "
                    "nothing was signed. Tell the store operator and the other data stewards."
                )
        elif e.state not in TERMINAL_STATES:
            raise ValueError(f"the store showed no manifest for batch {e.batch_id} under review; nothing was signed")
        found.append(SetMember(batch_id=e.batch_id, manifest_sha256=e.manifest_sha256))
    if found and set_root(found) != view.root:
        raise ValueError("the store's root is not the root of the members it showed; nothing was signed")
    return found
