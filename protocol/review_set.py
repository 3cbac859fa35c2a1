"""Review sets: one steward signature over a Merkle root of manifest hashes, and each batch's approval as
its inclusion proof under that signature.

A review set is a list of ``(batch_id, manifest_sha256)`` members in the order the store froze them.
Its tree is RFC 9162's (``protocol.merkle``, the audit log's own code), over leaves of version 1::

    leaf data = canonical({"v": 1, "batch_id": <32 hex>, "manifest_sha256": <64 hex>})

Signed message (steward key, Ed25519), version 1::

    b"consentry-review-set-v1\\0" || canonical({"v": 1, "set_id", "root", "size", "decision": "approve"})

A rejection of the whole set is signed the same way under its own prefix, with the reason in the
signed body (so no store can change what the employee is told), version 1::

    b"consentry-review-set-reject-v1\\0" || canonical({"v": 1, "set_id", "root", "size", "decision": "reject",
                                                      "reason"})

``set_id`` is the store's random id for the frozen set, so a signature for one set is never taken for
another, even one with the same members. A ``SetInclusion`` (the set approval, the batch's leaf index
and its inclusion path) is one batch's approval: it verifies on its own, and ``protocol.approval.tally``
counts it like a single signed approval, for the batch and manifest hash it proves and for no other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from protocol import domains, merkle
from protocol.canonical import canonical_json
from protocol.errors import InvalidRecord
from protocol.fields import (
    FROZEN,
    BatchId,
    EpochSeconds,
    PublicKey32,
    Sha256Hex,
    Signature64,
    Versioned,
    b64decode,
    b64encode,
)
from protocol.signing import Signer, is_valid_signature

MAX_SET_SIZE = 10_000  # members of one set; the store's queue is bounded well below this
SetId = BatchId  # 32 hex digits, random, chosen by the store when it freezes a set


class SetMember(BaseModel):
    """One batch of a review set, as the steward's tool recomputed its manifest hash."""

    model_config = FROZEN
    batch_id: BatchId
    manifest_sha256: Sha256Hex


def member_leaf(batch_id: str, manifest_sha256: str) -> bytes:
    """A member's leaf data (hashed as RFC 9162 ``SHA-256(0x00 || data)``)."""
    return canonical_json({"v": 1, "batch_id": batch_id, "manifest_sha256": manifest_sha256})


def set_tree(members: Sequence[SetMember]) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for m in members:
        tree.append(member_leaf(m.batch_id, m.manifest_sha256))
    return tree


def set_root(members: Sequence[SetMember]) -> str:
    """The hex root a steward signs for ``members`` (in their order)."""
    if not members:
        raise ValueError("a review set has at least one batch")
    return set_tree(members).root().hex()


def set_approval_message(set_id: str, root: str, size: int) -> bytes:
    body = {"v": 1, "set_id": set_id, "root": root, "size": size, "decision": "approve"}
    return domains.REVIEW_SET_V1 + canonical_json(body)


class SetApproval(Versioned):
    """A steward's signature over a review set's root. ``created`` is not signed (audit metadata)."""

    set_id: SetId
    root: Sha256Hex
    size: int = Field(ge=1, le=MAX_SET_SIZE)
    steward_key: PublicKey32
    signature: Signature64
    created: EpochSeconds

    def is_valid(self) -> bool:
        """The signature verifies under the key the approval names (says nothing about who that key is)."""
        return is_valid_signature(
            b64decode(self.steward_key),
            set_approval_message(self.set_id, self.root, self.size),
            b64decode(self.signature),
        )


def sign_set_approval(steward: Signer, set_id: str, members: Sequence[SetMember], *, created: int) -> SetApproval:
    """Sign the root of ``members`` (the manifest hashes the steward was shown, recomputed by their tool)."""
    root = set_root(members)
    signature = steward.sign(set_approval_message(set_id, root, len(members)))
    return SetApproval(
        v=1,
        set_id=set_id,
        root=root,
        size=len(members),
        steward_key=b64encode(steward.public_bytes),
        signature=b64encode(signature),
        created=created,
    )


class SetInclusion(Versioned):
    """One batch's approval under a set approval: its leaf index and RFC 9162 inclusion path."""

    approval: SetApproval
    batch_id: BatchId
    manifest_sha256: Sha256Hex
    leaf_index: int = Field(ge=0, lt=MAX_SET_SIZE)
    path: tuple[Sha256Hex, ...] = Field(max_length=64)

    # What protocol.approval.tally reads of any decision.
    decision: Literal["approve"] = "approve"

    @property
    def steward_key(self) -> str:
        return self.approval.steward_key

    @property
    def created(self) -> int:
        return self.approval.created

    @property
    def reason(self) -> None:
        return None

    def proves_inclusion(self) -> bool:
        """The leaf ``(batch_id, manifest_sha256)`` is at ``leaf_index`` under the approval's root."""
        return _proves(self, self.approval.size, self.approval.root)

    def is_valid(self) -> bool:
        """The set signature verifies and this batch's manifest hash is in the signed set."""
        return self.proves_inclusion() and self.approval.is_valid()


def inclusions(approval: SetApproval, members: Sequence[SetMember]) -> list[SetInclusion]:
    """Each member's approval under ``approval``; ``InvalidRecord`` unless ``members`` has the signed root."""
    return [
        SetInclusion(
            v=1, approval=approval, batch_id=m.batch_id, manifest_sha256=m.manifest_sha256, leaf_index=i, path=path
        )
        for i, m, path in _paths(members, approval.size, approval.root)
    ]


def _paths(members: Sequence[SetMember], size: int, root: str) -> list[tuple[int, SetMember, tuple[str, ...]]]:
    """Each member's leaf index and inclusion path; ``InvalidRecord`` unless ``members`` has the signed root."""
    tree = set_tree(members)
    if tree.size != size or tree.root().hex() != root:
        raise InvalidRecord()  # not the set the steward signed: another, a changed or an extended one
    return [
        (i, m, tuple(p.hex() for p in merkle.inclusion_path(i, tree.size, tree.get))) for i, m in enumerate(members)
    ]


def _proves(member: SetInclusion | SetRejectionInclusion, size: int, root: str) -> bool:
    """The member's leaf ``(batch_id, manifest_sha256)`` is at its ``leaf_index`` under ``root``."""
    return merkle.verify_inclusion(
        merkle.leaf_hash(member_leaf(member.batch_id, member.manifest_sha256)),
        member.leaf_index,
        size,
        [bytes.fromhex(p) for p in member.path],
        bytes.fromhex(root),
    )


# Rejecting a whole set ------------------------------------------------------------------------------------
Reason = str  # what the steward wrote: 1 to 500 characters, not blank (checked by ``SetRejection``)


def set_rejection_message(set_id: str, root: str, size: int, reason: str) -> bytes:
    body = {"v": 1, "set_id": set_id, "root": root, "size": size, "decision": "reject", "reason": reason}
    return domains.REVIEW_SET_REJECT_V1 + canonical_json(body)


class SetRejection(Versioned):
    """A steward's signature rejecting every batch of a review set, reason included. ``created`` is not signed."""

    set_id: SetId
    root: Sha256Hex
    size: int = Field(ge=1, le=MAX_SET_SIZE)
    steward_key: PublicKey32
    signature: Signature64
    # Not blank: the pattern (searched, as JSON Schema does) needs one character that is not white space.
    reason: Reason = Field(
        min_length=1, max_length=500, pattern=r"\S", description="signed; shown to each batch's employee"
    )
    created: EpochSeconds

    def is_valid(self) -> bool:
        """The signature verifies under the key the rejection names (says nothing about who that key is)."""
        return is_valid_signature(
            b64decode(self.steward_key),
            set_rejection_message(self.set_id, self.root, self.size, self.reason),
            b64decode(self.signature),
        )


def sign_set_rejection(
    steward: Signer, set_id: str, members: Sequence[SetMember], reason: str, *, created: int
) -> SetRejection:
    """Sign the rejection of ``members`` (the manifest hashes shown, recomputed by the steward's tool)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a rejection needs a reason; nothing was signed")
    root = set_root(members)
    signature = steward.sign(set_rejection_message(set_id, root, len(members), reason))
    return SetRejection(
        v=1,
        set_id=set_id,
        root=root,
        size=len(members),
        steward_key=b64encode(steward.public_bytes),
        signature=b64encode(signature),
        reason=reason,
        created=created,
    )


class SetRejectionInclusion(Versioned):
    """One batch's rejection under a set rejection: its leaf index and RFC 9162 inclusion path."""

    rejection: SetRejection
    batch_id: BatchId
    manifest_sha256: Sha256Hex
    leaf_index: int = Field(ge=0, lt=MAX_SET_SIZE)
    path: tuple[Sha256Hex, ...] = Field(max_length=64)

    decision: Literal["reject"] = "reject"  # what protocol.approval.tally reads of any decision

    @property
    def steward_key(self) -> str:
        return self.rejection.steward_key

    @property
    def created(self) -> int:
        return self.rejection.created

    @property
    def reason(self) -> str:
        return self.rejection.reason

    @property
    def signature(self) -> str:
        return self.rejection.signature

    def proves_inclusion(self) -> bool:
        return _proves(self, self.rejection.size, self.rejection.root)

    def is_valid(self) -> bool:
        """The set rejection's signature verifies and this batch's manifest hash is in the signed set."""
        return self.proves_inclusion() and self.rejection.is_valid()


def rejection_inclusions(rejection: SetRejection, members: Sequence[SetMember]) -> list[SetRejectionInclusion]:
    """Each member's rejection under ``rejection``; ``InvalidRecord`` unless ``members`` has the signed root."""
    return [
        SetRejectionInclusion(
            v=1, rejection=rejection, batch_id=m.batch_id, manifest_sha256=m.manifest_sha256, leaf_index=i, path=path
        )
        for i, m, path in _paths(members, rejection.size, rejection.root)
    ]
