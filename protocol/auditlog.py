"""The store's audit-log formats: log entries, signed tree heads and receipts with inclusion proofs.

A leaf's data is the canonical JSON of a ``LogEntry`` (version 1); its leaf hash is RFC 9162's
``SHA-256(0x00 || data)``. Entries never carry a subject pseudonym in clear: erasures name
``subject_digest`` (SHA-256 of ``"consentry-subject-v1\\0" || subject``).

Tree head signature (store log key, Ed25519), version 1::

    b"consentry-treehead-v1\\0" || canonical({"v": 1, "size", "root_hash", "timestamp"})

A ``LogReceipt`` is what an agent keeps: the entry, its index, the signed tree head right after it was
appended and the inclusion path; ``verify_receipt`` checks all three.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field

from protocol import domains, merkle
from protocol.canonical import canonical_json
from protocol.errors import InvalidRecord
from protocol.fields import EpochSeconds, Sha256Hex, Signature64, Versioned, b64decode, b64encode
from protocol.signing import Signer, verify_signature

EntryKind = Literal[
    "batch-stored",
    "approval",
    "rejection",
    "erasure",
    "export",
    "enrollment",
    "withdrawal",
    # governed dataset releases (store/releases/): request, steward decisions, build, a run's use
    "release-request",
    "release-approval",
    "release-rejection",
    "release-build",
    "release-use",
]


class LogEntry(Versioned):
    kind: EntryKind
    time: EpochSeconds
    body: dict[str, Any] = Field(description="kind-specific fields: ids, digests and counts only")

    def leaf_data(self) -> bytes:
        return canonical_json(self.canonical_dict())

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.leaf_data())


class TreeHead(Versioned):
    size: int = Field(ge=0)
    root_hash: Sha256Hex
    timestamp: EpochSeconds
    signature: Signature64


class LogReceipt(Versioned):
    entry: LogEntry
    leaf_index: int = Field(ge=0)
    tree_head: TreeHead
    inclusion: tuple[Sha256Hex, ...] = Field(max_length=64)


class ConsistencyProof(Versioned):
    first: int = Field(ge=0)
    second: int = Field(ge=0)
    path: tuple[Sha256Hex, ...] = Field(max_length=128)


class InclusionProof(Versioned):
    leaf_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    path: tuple[Sha256Hex, ...] = Field(max_length=64)


def subject_digest(subject: str) -> str:
    return hashlib.sha256(domains.SUBJECT_V1 + subject.encode("utf-8")).hexdigest()


def tree_head_message(size: int, root_hash: str, timestamp: int) -> bytes:
    return domains.TREE_HEAD_V1 + canonical_json({"v": 1, "size": size, "root_hash": root_hash, "timestamp": timestamp})


def sign_tree_head(log_key: Signer, size: int, root: bytes, *, timestamp: int) -> TreeHead:
    signature = log_key.sign(tree_head_message(size, root.hex(), timestamp))
    return TreeHead(v=1, size=size, root_hash=root.hex(), timestamp=timestamp, signature=b64encode(signature))


def verify_tree_head(head: TreeHead, log_public_key: bytes) -> None:
    """``InvalidRecord`` unless the store's log key signed ``head``."""
    verify_signature(
        log_public_key,
        tree_head_message(head.size, head.root_hash, head.timestamp),
        b64decode(head.signature),
    )


def verify_receipt(receipt: LogReceipt, log_public_key: bytes) -> None:
    """Check the tree head signature and that the entry is leaf ``leaf_index`` of that tree."""
    verify_tree_head(receipt.tree_head, log_public_key)
    path = [bytes.fromhex(p) for p in receipt.inclusion]
    ok = merkle.verify_inclusion(
        receipt.entry.leaf_hash(),
        receipt.leaf_index,
        receipt.tree_head.size,
        path,
        bytes.fromhex(receipt.tree_head.root_hash),
    )
    if not ok:
        raise InvalidRecord()  # the receipt's inclusion proof does not verify


def verify_heads_consistent(older: TreeHead, newer: TreeHead, proof: ConsistencyProof, log_public_key: bytes) -> None:
    """Both heads signed by the log key, and ``newer``'s tree extends ``older``'s (RFC 9162 §2.1.4.2)."""
    verify_tree_head(older, log_public_key)
    verify_tree_head(newer, log_public_key)
    if (proof.first, proof.second) != (older.size, newer.size):
        raise InvalidRecord()  # the consistency proof is for other tree sizes
    ok = merkle.verify_consistency(
        older.size,
        newer.size,
        bytes.fromhex(older.root_hash),
        bytes.fromhex(newer.root_hash),
        [bytes.fromhex(p) for p in proof.path],
    )
    if not ok:
        raise InvalidRecord()  # the tree heads are not consistent: the log was rewritten
