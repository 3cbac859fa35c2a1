"""The batch manifest: what a batch holds, the consent behind it and its privacy checks, never records.

The manifest is what the employee previews and the data stewards approve. Its digest
(``manifest_digest``: SHA-256 of its canonical JSON) is signed into the batch header and into every
steward approval, and is the "batch hash" that the next batch of the same device names as
``prev_batch_hash``, so a device's manifests form a hash chain the store checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, model_validator

from protocol.canonical import canonical_json, sha256_hex
from protocol.categories import Category
from protocol.consent_ref import ConsentReceiptRef
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


class BatchManifest(Versioned):
    """Version 1 of the manifest; see the module docstring for how it is hashed and chained."""

    batch_id: BatchId
    subject: Subject
    device_kid: KeyId
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
    def _consistent(self) -> BatchManifest:
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


def manifest_digest(manifest: BatchManifest) -> str:
    """SHA-256 (hex) of the canonical manifest: what headers, approvals and the chain refer to."""
    return sha256_hex(canonical_json(manifest.canonical_dict()))


def build_manifest(
    *,
    batch_id: str,
    subject: str,
    device_kid: str,
    seq: int,
    prev_batch_hash: str,
    records: Sequence[AnyWindow],
    receipts: Sequence[ConsentReceiptRef],
    payload: bytes,
    created: int,
    source_records: Sequence[AnyWindow] | None = None,
) -> BatchManifest:
    """Describe a batch whose payload is ``payload`` (from ``encode_payload(batch_id, records)``).

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
    return BatchManifest(
        v=1,
        batch_id=batch_id,
        subject=subject,
        device_kid=device_kid,
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
