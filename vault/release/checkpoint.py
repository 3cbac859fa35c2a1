"""Signed consent-ledger checkpoints, which let the store witness each device's ledger.

Signed message (version 1)::

    b"consentry-checkpoint-v1\\0" || canonical({"v", "device_kid", "seq", "head_hash", "created"})

The store keeps the highest checkpoint per device and refuses one with a lower ``seq`` (a rollback) or the
same ``seq`` with another hash (a fork). Limit: without the ledger entries between two checkpoints the
store cannot prove that a higher checkpoint *extends* the last one; a rewritten ledger is caught only
where two checkpoints of the same ``seq`` disagree, or by the employee's own ``ledger verify``.
"""

from __future__ import annotations

from pydantic import Field

from vault.canonical import canonical_json
from vault.release.fields import EpochSeconds, KeyId, Sha256Hex, Signature64, Versioned, b64decode, b64encode
from vault.release.signing import Signer, verify_signature

CHECKPOINT_DOMAIN = b"consentry-checkpoint-v1\0"


class LedgerCheckpoint(Versioned):
    device_kid: KeyId
    seq: int = Field(ge=0, le=2**53)
    head_hash: Sha256Hex
    created: EpochSeconds
    signature: Signature64


def checkpoint_message(device_kid: str, seq: int, head_hash: str, created: int) -> bytes:
    body = {"v": 1, "device_kid": device_kid, "seq": seq, "head_hash": head_hash, "created": created}
    return CHECKPOINT_DOMAIN + canonical_json(body)


def sign_checkpoint(device_key: Signer, seq: int, head_hash: str, *, created: int) -> LedgerCheckpoint:
    signature = device_key.sign(checkpoint_message(device_key.kid, seq, head_hash, created))
    return LedgerCheckpoint(
        v=1,
        device_kid=device_key.kid,
        seq=seq,
        head_hash=head_hash,
        created=created,
        signature=b64encode(signature),
    )


def verify_checkpoint(checkpoint: LedgerCheckpoint, device_public_key: bytes) -> None:
    """``InvalidRecord`` unless the device key signed this checkpoint."""
    message = checkpoint_message(
        checkpoint.device_kid, checkpoint.seq, checkpoint.head_hash, checkpoint.created
    )
    verify_signature(device_public_key, message, b64decode(checkpoint.signature))
