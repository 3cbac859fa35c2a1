"""Steward decisions on a batch manifest, and counting them against the steward configuration.

Signed message (version 1; batch ids are 32 hex digits and digests 64, so the concatenation is unambiguous)::

    b"consentry-approve-v1\\0" || batch_id || manifest_sha256 || decision      (ASCII; decision: approve|reject)

Counting rules (``tally``): only keys named in the *verifier's own* ``StewardConfig`` count; the device
key that submitted the batch never counts, even when listed; each steward counts once; a signature that
does not verify, or names another batch or manifest, counts for nothing. One valid rejection by a listed
steward rejects the batch (a veto: releasing personal data needs consent of the quorum, refusing does not).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import Field

from protocol import domains
from protocol.errors import InvalidRecord
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
from protocol.signing import Signer, is_valid_signature
from protocol.stewards import StewardConfig

Decision = Literal["approve", "reject"]
TallyOutcome = Literal["pending", "approved", "rejected"]


class Approval(Versioned):
    """One steward's signed decision. ``reason`` and ``created`` are not signed (audit metadata)."""

    batch_id: BatchId
    manifest_sha256: Sha256Hex
    decision: Decision
    steward_key: PublicKey32
    signature: Signature64
    reason: str | None = Field(default=None, max_length=500)
    created: EpochSeconds

    def is_valid(self) -> bool:
        return approval_is_valid(self)


class CountedDecision(Protocol):
    """What ``tally`` reads of a decision: an ``Approval``, or a batch's inclusion in a signed review set
    (``protocol.review_set.SetInclusion``); ``is_valid`` checks its own signature (and proof)."""

    @property
    def batch_id(self) -> str: ...
    @property
    def manifest_sha256(self) -> str: ...
    @property
    def steward_key(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    def is_valid(self) -> bool: ...


def approval_message(batch_id: str, manifest_sha256: str, decision: str) -> bytes:
    return domains.APPROVE_V1 + batch_id.encode("ascii") + manifest_sha256.encode("ascii") + decision.encode("ascii")


def sign_approval(
    steward: Signer,
    batch_id: str,
    manifest_sha256: str,
    decision: Decision,
    *,
    created: int,
    reason: str | None = None,
) -> Approval:
    if decision == "reject" and not reason:
        raise ValueError("a rejection needs a reason")
    signature = steward.sign(approval_message(batch_id, manifest_sha256, decision))
    return Approval(
        v=1,
        batch_id=batch_id,
        manifest_sha256=manifest_sha256,
        decision=decision,
        steward_key=b64encode(steward.public_bytes),
        signature=b64encode(signature),
        reason=reason,
        created=created,
    )


def reason_digest(reason: str, signature: str) -> str:
    """A rejection's reason as the audit log names it: ``SHA-256(prefix || signature || UTF-8 reason)``, hex.

    The log is append-only and kept for good, and a reason may name a person, so it holds this digest and
    never the text. Salting with the decision's 64 signature bytes (base64 ``signature``, kept with the
    reason in the store's database, never in the log) means nobody can confirm a guessed reason from the
    log alone, while anyone holding the decision can check that the logged digest is its reason's.
    """
    return hashlib.sha256(domains.REJECTION_REASON_V1 + b64decode(signature) + reason.encode("utf-8")).hexdigest()


def approval_is_valid(approval: Approval) -> bool:
    """The signature verifies under the key the approval names (says nothing about who that key is)."""
    return is_valid_signature(
        b64decode(approval.steward_key),
        approval_message(approval.batch_id, approval.manifest_sha256, approval.decision),
        b64decode(approval.signature),
    )


def verify_approval(approval: Approval) -> None:
    """``InvalidRecord`` unless the key the approval names signed it (``approval_is_valid``, raising)."""
    if not approval_is_valid(approval):
        raise InvalidRecord()


@dataclass(frozen=True)
class IgnoredApproval:
    steward_key: str
    reason: Literal["bad_signature", "other_batch", "unknown_key", "device_key", "duplicate"]


@dataclass(frozen=True)
class Tally:
    approved_by: tuple[str, ...]
    rejected_by: tuple[str, ...]
    ignored: tuple[IgnoredApproval, ...]
    required: int

    @property
    def status(self) -> TallyOutcome:
        if self.rejected_by:
            return "rejected"
        if len(self.approved_by) >= self.required:
            return "approved"
        return "pending"


def tally(
    approvals: Sequence[CountedDecision],
    stewards: StewardConfig,
    *,
    batch_id: str,
    manifest_sha256: str,
    device_public_key: bytes,
) -> Tally:
    """Count ``approvals`` for one batch under ``stewards`` (see the module docstring for the rules)."""
    names_by_key = {key: name for name, key in stewards.keys.items()}
    device_key = b64encode(device_public_key)
    seen: set[str] = set()
    approved: list[str] = []
    rejected: list[str] = []
    ignored: list[IgnoredApproval] = []
    for approval in approvals:
        key = approval.steward_key
        if approval.batch_id != batch_id or approval.manifest_sha256 != manifest_sha256:
            ignored.append(IgnoredApproval(key, "other_batch"))
        elif key == device_key:
            ignored.append(IgnoredApproval(key, "device_key"))
        elif key not in names_by_key:
            ignored.append(IgnoredApproval(key, "unknown_key"))
        elif not approval.is_valid():
            ignored.append(IgnoredApproval(key, "bad_signature"))
        elif key in seen:
            ignored.append(IgnoredApproval(key, "duplicate"))
        else:
            seen.add(key)
            (approved if approval.decision == "approve" else rejected).append(names_by_key[key])
    return Tally(tuple(approved), tuple(rejected), tuple(ignored), stewards.approvals_required)
