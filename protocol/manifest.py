"""The batch manifest: what a batch holds, the consent behind it and its privacy checks, never records.

The manifest is what the employee previews and the data stewards approve. Its digest
(``manifest_digest``: SHA-256 of its canonical JSON, whatever its version) is signed into the batch
header and into every steward approval, and is the "batch hash" that the next batch of the same device
names as ``prev_batch_hash``, so a device's manifests form a hash chain the store checks.

Two versions are accepted (``BatchManifest`` is either; ``read_manifest`` parses stored text):

- **Version 2** (built now): no device key id. The device is bound to the batch by the device-signed
  ``BatchHeader`` (which names ``device_kid`` and ``manifest_sha256``) and by the store, which records
  the authenticated device that submitted the manifest. Stewards review and sign it without learning
  which device sent it.
- **Version 1** (agents before version 2, and batches already in vaults): the same fields plus
  ``device_kid``. Still accepted and hashed exactly as sent, so approvals already signed stay valid;
  a steward's tools withhold its ``device_kid`` when they show it (``withheld_from_stewards``).

``seq`` and ``prev_batch_hash`` still chain one device's manifests to each other in both versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from protocol.canonical import canonical_json, sha256_hex
from protocol.categories import Category
from protocol.consent_ref import ConsentReceiptRef
from protocol.errors import UnsupportedVersion
from protocol.fields import (
    BatchId,
    EpochSeconds,
    KeyId,
    Sha256Hex,
    Subject,
    Versioned,
)
from protocol.payload import payload_digest
from protocol.privacy import PrivacyCheck, run_privacy_checks
from protocol.windows import SCHEMA_VERSION, AnyWindow, window_to_json_dict

# The ``prev_batch_hash`` of a device's first batch: there is no previous manifest to name.
NO_PREVIOUS_BATCH = "0" * 64


class _ManifestFields(Versioned):
    """What both versions hold (see the module docstring); never built on its own."""

    batch_id: BatchId
    subject: Subject
    seq: int = Field(ge=1, le=2**53, description="1 for a device's first batch, then +1 per manifest submitted")
    prev_batch_hash: Sha256Hex = Field(description="manifest digest of the previous batch, or 64 zeros")
    period_start: EpochSeconds
    period_end: EpochSeconds
    schema_version: int = Field(ge=1, description="protocol.windows.SCHEMA_VERSION of the records")
    record_counts: dict[Category, Annotated[int, Field(ge=0)]]
    consent_receipts: tuple[ConsentReceiptRef, ...] = Field(min_length=1, max_length=256)
    privacy_checks: tuple[PrivacyCheck, ...] = Field(max_length=32)
    payload_sha256: Sha256Hex
    payload_bytes: int = Field(ge=1)
    created: EpochSeconds

    @model_validator(mode="after")
    def _consistent(self) -> Any:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        ids = [r.receipt_id for r in self.consent_receipts]
        if len(set(ids)) != len(ids):
            raise ValueError("consent_receipts lists a receipt twice")
        if sum(self.record_counts.values()) < 1:
            raise ValueError("a batch needs at least one record")
        return self

    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.privacy_checks if not c.passed)


class BatchManifestV1(_ManifestFields):
    """Version 1, from agents before version 2: also names the device key id. Accepted and hashed as sent."""

    device_kid: KeyId


class BatchManifestV2(_ManifestFields):
    """Version 2, built now: no device key id (the device-signed header and the store bind the device)."""

    VERSION: ClassVar[int] = 2
    v: Literal[2] = Field(description="format version")  # type: ignore[assignment]


MANIFEST_VERSIONS = (1, 2)
# Fields of an accepted version that a steward's tools never show (the hash is still checked over them).
WITHHELD_FROM_STEWARDS: dict[int, tuple[str, ...]] = {1: ("device_kid",), 2: ()}


def _manifest_version(data: Any) -> str | None:
    """The tag of ``data``'s version; ``UnsupportedVersion`` for any other integer, before other fields."""
    version = data.get("v") if isinstance(data, dict) else getattr(data, "v", None)
    if isinstance(version, int) and not isinstance(version, bool):
        if version in MANIFEST_VERSIONS:
            return str(version)
        raise UnsupportedVersion(f"BatchManifest version {version} is not supported (only 1 and 2)")
    return None  # pydantic then says that v is missing or not an integer


# Either accepted version, chosen by ``v`` (the published schema says exactly which fields each has).
BatchManifest = Annotated[
    Annotated[BatchManifestV1, Tag("1")] | Annotated[BatchManifestV2, Tag("2")],
    Discriminator(_manifest_version),
]
_MANIFEST: TypeAdapter[BatchManifestV1 | BatchManifestV2] = TypeAdapter(BatchManifest)


def read_manifest(data: str | bytes | dict[str, Any]) -> BatchManifestV1 | BatchManifestV2:
    """A manifest of either version from its JSON text (as stored) or its JSON object."""
    if isinstance(data, dict):
        return _MANIFEST.validate_python(data)
    return _MANIFEST.validate_json(data)


def withheld_from_stewards(manifest: BatchManifestV1 | BatchManifestV2) -> tuple[str, ...]:
    """The fields of ``manifest`` that a steward's tools never show (``device_kid`` of version 1).

    IT's fleet view lists device key ids per computer; beside a subject pseudonym one would say which
    computer's employee consented. The tools check the manifest's hash over every field first.
    """
    return WITHHELD_FROM_STEWARDS[manifest.v]


def manifest_digest(manifest: BatchManifestV1 | BatchManifestV2) -> str:
    """SHA-256 (hex) of the canonical manifest (either version, every field it has): what headers,
    approvals and the chain refer to."""
    return sha256_hex(canonical_json(manifest.canonical_dict()))


def build_manifest(
    *,
    batch_id: str,
    subject: str,
    seq: int,
    prev_batch_hash: str,
    records: Sequence[AnyWindow],
    receipts: Sequence[ConsentReceiptRef],
    payload: bytes,
    created: int,
    source_records: Sequence[AnyWindow] | None = None,
) -> BatchManifestV2:
    """Describe a batch whose payload is ``payload`` (from ``encode_payload(batch_id, records)``), version 2.

    ``source_records`` are the records before ``rekey_app_tokens``; passing them lets the
    ``app_tokens_rekeyed`` check confirm that no vault-level app token survives into the batch.
    Only the receipts that records use are kept. Failed checks are recorded, not raised: the employee
    sees them in the preview, and the store refuses a manifest with a failed check.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    raw = [window_to_json_dict(r) for r in records]
    used = {r.receipt_id for r in records}
    kept = tuple(sorted((r for r in receipts if r.receipt_id in used), key=lambda r: r.receipt_id))
    if not kept:
        raise ValueError("none of the given consent receipts covers these records")
    counts: dict[Category, int] = {}
    for record in records:
        category = Category(record.category)
        counts[category] = counts.get(category, 0) + 1
    source = None if source_records is None else [window_to_json_dict(r) for r in source_records]
    checks = run_privacy_checks(raw, kept, counts, source_records=source)
    return BatchManifestV2(
        v=2,
        batch_id=batch_id,
        subject=subject,
        seq=seq,
        prev_batch_hash=prev_batch_hash,
        period_start=min(r.start for r in records),
        period_end=max(r.end for r in records),
        schema_version=SCHEMA_VERSION,
        record_counts=counts,
        consent_receipts=kept,
        privacy_checks=checks,
        payload_sha256=payload_digest(payload),
        payload_bytes=len(payload),
        created=created,
    )
