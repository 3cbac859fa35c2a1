"""Signed consent-ledger checkpoints, and the proof that one extends the last the store witnessed.

This is the checkpoint the vault's ledger already signs (``vault.ledger.Checkpoint``); the same bytes,
version 1::

    b"consentry-checkpoint-v1\\0" || canonical({"v": 1, "seq", "head_hash", "device_kid", "at"})

with ``at`` an ISO 8601 UTC time and the Ed25519 signature hex-encoded, so a ledger checkpoint is sent
as it is: ``LedgerCheckpoint.model_validate(checkpoint.model_dump())``.

The store keeps the highest checkpoint per device and refuses one with a lower ``seq`` (a rollback) or the
same ``seq`` with another hash (a fork). A *higher* one must carry ``proof``: the entries from ``from_seq``
(a seq the store witnessed, or 0 for the genesis) up to ``seq``, each as its link: ``{"digest"}`` for a
version-2 entry (its salted digest, ``vault.ledger.entry_digest``: reveals nothing of the entry) or
``{"body"}`` for a version-1 entry written before digests existed (its body: the one case that shows an
entry's content). The store recomputes the chain (``extend_chain``) from the witnessed hash at
``from_seq``; it must pass through the witnessed head and end at ``head_hash``, or the ledger was rewritten.
The proof is not signed: the hash chain is what binds it, and the checkpoint's signature binds the head.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from protocol.fields import FROZEN, KeyId, Sha256Hex, Versioned
from protocol.ledger_chain import chain_hash, checkpoint_bytes, link_hash
from protocol.signing import Signer, verify_signature
from protocol.timeutil import iso_from_epoch, parse_iso

# At ~80 bytes a link, one submission stays well below a megabyte; a longer gap is sent in steps, each
# step an intermediate checkpoint the device signs (agent/shipping.py).
MAX_LINKS = 8192

IsoTime = Annotated[
    str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$", description="ISO 8601 UTC")
]


class LedgerLink(BaseModel):
    """One ledger entry between two checkpoints, as the store may see it: exactly one of the two fields."""

    model_config = FROZEN

    digest: Sha256Hex | None = Field(default=None, description="a version-2 entry's salted digest")
    body: dict[str, Any] | None = Field(default=None, description="a version-1 entry (predates digests)")

    @model_validator(mode="after")
    def _exactly_one(self) -> LedgerLink:
        if (self.digest is None) == (self.body is None):
            raise ValueError("a ledger link has either a digest or a body")
        return self


class ExtensionProof(BaseModel):
    """The links from entry ``from_seq`` (exclusive) to the checkpoint's ``seq`` (inclusive)."""

    model_config = FROZEN

    from_seq: int = Field(ge=0, le=2**53)
    links: list[LedgerLink] = Field(max_length=MAX_LINKS)


class LedgerCheckpoint(Versioned):
    seq: int = Field(ge=0, le=2**53)
    head_hash: Sha256Hex
    device_kid: KeyId
    at: IsoTime
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature, hex")]
    proof: ExtensionProof | None = Field(
        default=None, description="required when seq is above the checkpoint the store last witnessed"
    )

    def epoch_seconds(self) -> int:
        return int(parse_iso(self.at).timestamp())


def checkpoint_message(seq: int, head_hash: str, device_kid: str, at: str) -> bytes:
    return checkpoint_bytes(seq, head_hash, device_kid, at)  # one definition, in the ledger


def sign_checkpoint(device_key: Signer, seq: int, head_hash: str, *, created: int) -> LedgerCheckpoint:
    at = iso_from_epoch(created)
    signature = device_key.sign(checkpoint_message(seq, head_hash, device_key.kid, at))
    return LedgerCheckpoint(
        v=1, seq=seq, head_hash=head_hash, device_kid=device_key.kid, at=at, signature=signature.hex()
    )


def verify_checkpoint(checkpoint: LedgerCheckpoint, device_public_key: bytes) -> None:
    """``InvalidRecord`` unless the device key signed this checkpoint."""
    message = checkpoint_message(checkpoint.seq, checkpoint.head_hash, checkpoint.device_kid, checkpoint.at)
    verify_signature(device_public_key, message, bytes.fromhex(checkpoint.signature))


def extend_chain(from_hash: str, links: list[LedgerLink]) -> list[str]:
    """The chain hashes after each link, starting from ``from_hash``; ValueError for an unusable body."""
    hashes = []
    current = from_hash
    for link in links:
        if link.digest is not None:
            current = link_hash(current, link.digest)
        else:
            assert link.body is not None
            if link.body.get("v") != 1:
                raise ValueError("only a version-1 entry is sent as a body")
            current = chain_hash(current, link.body)
        hashes.append(current)
    return hashes


def with_proof(checkpoint: LedgerCheckpoint, from_seq: int, links: list[dict[str, Any]]) -> LedgerCheckpoint:
    """The checkpoint with the links (``vault.ledger.Ledger.extension_links``) from ``from_seq``."""
    proof = ExtensionProof(from_seq=from_seq, links=[LedgerLink.model_validate(link) for link in links])
    return checkpoint.model_copy(update={"proof": proof})
