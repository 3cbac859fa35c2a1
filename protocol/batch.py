"""The batch header and the sealed batch as they travel from the workstation to the store.

``BatchHeader`` (version 1) is signed by the device key and bound into the HPKE encryption as ``info``;
its canonical JSON is what both refer to. ``SealedBatch`` is the upload body (JSON)::

    {"v": 1, "header": {BatchHeader}, "sealed": base64(sealed bytes), "signature": base64(64 bytes)}

The sealed bytes and the signed message are laid out in ``protocol.sealing``. The header is what binds a
batch to its device: it names ``device_kid`` and the manifest's digest, and the device signs it. A
version-2 manifest names no device (``protocol.manifest``); a version-1 manifest's ``device_kid`` must
equal the header's.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from protocol.canonical import canonical_json, sha256_hex
from protocol.fields import (
    FROZEN,
    Base64,
    BatchId,
    EpochSeconds,
    KeyId,
    Sha256Hex,
    Signature64,
    Subject,
    Versioned,
)
from protocol.manifest import BatchManifest, BatchManifestV1, manifest_digest


class LedgerCheckpointRef(BaseModel):
    """The head of the device's consent ledger when the batch was sealed."""

    model_config = FROZEN

    seq: int = Field(ge=0, le=2**53)
    head_hash: Sha256Hex


class BatchHeader(Versioned):
    batch_id: BatchId
    subject: Subject
    device_kid: KeyId
    seq: int = Field(ge=1, le=2**53)
    prev_batch_hash: Sha256Hex
    manifest_sha256: Sha256Hex
    ledger_checkpoint: LedgerCheckpointRef
    created: EpochSeconds

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.canonical_dict())

    def digest(self) -> str:
        return sha256_hex(self.canonical_bytes())


class SealedBatch(Versioned):
    header: BatchHeader
    sealed: Base64 = Field(max_length=64 * 1024 * 1024)
    signature: Signature64


def build_header(
    manifest: BatchManifest, ledger_checkpoint: LedgerCheckpointRef, *, device_kid: str, created: int
) -> BatchHeader:
    """The header for shipping the batch that ``manifest`` describes, from the device ``device_kid``
    (the key that will sign it): copies the manifest's ids and binds its digest.

    A version-1 manifest names its device itself; ``device_kid`` must be that one (ValueError otherwise).
    """
    if isinstance(manifest, BatchManifestV1) and manifest.device_kid != device_kid:
        raise ValueError("the version-1 manifest names another device_kid than the signing device's")
    return BatchHeader(
        v=1,
        batch_id=manifest.batch_id,
        subject=manifest.subject,
        device_kid=device_kid,
        seq=manifest.seq,
        prev_batch_hash=manifest.prev_batch_hash,
        manifest_sha256=manifest_digest(manifest),
        ledger_checkpoint=ledger_checkpoint,
        created=created,
    )


def header_mismatches(header: BatchHeader, manifest: BatchManifest) -> tuple[str, ...]:
    """Names of header fields that disagree with the manifest (empty when the header describes it).

    The header's ``device_kid`` is compared with a version-1 manifest's; a version-2 manifest names no
    device, and the store compares the header's with the device that submitted the manifest instead.
    """
    wrong = [
        name
        for name in ("batch_id", "subject", "seq", "prev_batch_hash")
        if getattr(header, name) != getattr(manifest, name)
    ]
    if isinstance(manifest, BatchManifestV1) and header.device_kid != manifest.device_kid:
        wrong.append("device_kid")
    if header.manifest_sha256 != manifest_digest(manifest):
        wrong.append("manifest_sha256")
    return tuple(wrong)
