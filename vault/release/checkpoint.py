"""Signed consent-ledger checkpoints, which let the store witness each device's ledger.

This is the checkpoint the vault's ledger already signs (``vault.ledger.Checkpoint``); the same bytes,
version 1::

    b"consentry-checkpoint-v1\\0" || canonical({"v": 1, "seq", "head_hash", "device_kid", "at"})

with ``at`` an ISO 8601 UTC time and the Ed25519 signature hex-encoded, so a ledger checkpoint is sent
as it is: ``LedgerCheckpoint.model_validate(checkpoint.model_dump())``.

The store keeps the highest checkpoint per device and refuses one with a lower ``seq`` (a rollback) or the
same ``seq`` with another hash (a fork). Limit: without the ledger entries between two checkpoints the
store cannot prove that a higher checkpoint *extends* the last one; a rewritten ledger is caught only
where two checkpoints of the same ``seq`` disagree, or by the employee's own ``consentry ledger verify``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field

from vault.ledger import checkpoint_bytes
from vault.release.fields import KeyId, Sha256Hex, Versioned
from vault.signing import Signer, verify_signature

IsoTime = Annotated[
    str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$", description="ISO 8601 UTC")
]


class LedgerCheckpoint(Versioned):
    seq: int = Field(ge=0, le=2**53)
    head_hash: Sha256Hex
    device_kid: KeyId
    at: IsoTime
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature, hex")]

    def epoch_seconds(self) -> int:
        return int(datetime.fromisoformat(self.at).timestamp())


def checkpoint_message(seq: int, head_hash: str, device_kid: str, at: str) -> bytes:
    return checkpoint_bytes(seq, head_hash, device_kid, at)  # one definition, in the ledger


def iso_utc(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign_checkpoint(device_key: Signer, seq: int, head_hash: str, *, created: int) -> LedgerCheckpoint:
    at = iso_utc(created)
    signature = device_key.sign(checkpoint_message(seq, head_hash, device_key.kid, at))
    return LedgerCheckpoint(
        v=1, seq=seq, head_hash=head_hash, device_kid=device_key.kid, at=at, signature=signature.hex()
    )


def verify_checkpoint(checkpoint: LedgerCheckpoint, device_public_key: bytes) -> None:
    """``InvalidRecord`` unless the device key signed this checkpoint."""
    message = checkpoint_message(checkpoint.seq, checkpoint.head_hash, checkpoint.device_kid, checkpoint.at)
    verify_signature(device_public_key, message, bytes.fromhex(checkpoint.signature))
