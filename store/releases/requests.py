"""A data consumer's signed release request, and the release manifest the store computes from it.

Signed message (version 1; Ed25519 by the consumer's key)::

    b"consentry-release-request-v1\\0" || canonical_json(request without "signature")

The manifest (``release_manifest``) is computed from the stored batch manifests only -- counts, never
records -- and is what stewards approve: its SHA-256 over canonical JSON (``manifest_sha256``) is the
hash every steward decision signs. Eligibility, per batch and category (a batch holds one subject's
records of one UTC day):

- *purpose*: every consent receipt of that category in the batch lists the requested purpose;
- *retention*: the batch's period ended less than ``retention_days`` before the request;
- *erasure*: the subject was not erased (erased batches keep no manifest; they are counted as a whole).

A batch is in the request when its period lies inside the requested period.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from protocol import domains
from protocol.canonical import canonical_json
from protocol.categories import Category
from protocol.fields import (
    BatchId,
    EpochSeconds,
    PublicKey32,
    Signature64,
    Versioned,
    b64decode,
    b64encode,
)
from protocol.manifest import read_manifest
from protocol.signing import Signer, is_valid_signature
from store.backend import StoreTx
from store.releases.consumers import ReleasePolicy

REQUEST_V1 = domains.RELEASE_REQUEST_V1
Purpose = Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,64}$")]
# What every released row holds besides its category's measures (store.export.SCHEMAS names them all).
LINKABLE_COLUMNS = {
    "subject": "a release-scoped alias of the subject's period pseudonym: links one subject's rows in this release",
    "batch_id": "a release-scoped alias of the batch: links rows of one subject and one UTC day",
    "receipt_id": "the consent grant's id: shared by a subject's rows under one grant, possibly across periods",
    "start/end": "window times: rows of different categories of one subject line up in time",
    "apps.focus.app": "allow-listed application categories ('cat:...') are shared across subjects; "
    "other tokens ('anon:...') are re-keyed per batch and link nothing beyond it",
}


class ReleaseRequest(Versioned):
    """What a consumer asks for. Nothing is produced by a request; stewards approve its manifest first."""

    release_id: BatchId
    consumer_key: PublicKey32
    purpose: Purpose
    categories: tuple[Category, ...] = Field(min_length=1, max_length=8)
    period_start: EpochSeconds
    period_end: EpochSeconds
    description: str = Field(min_length=1, max_length=500)
    created: EpochSeconds
    signature: Signature64

    @model_validator(mode="after")
    def _sane(self) -> ReleaseRequest:
        if self.period_end <= self.period_start:
            raise ValueError("the period must end after it starts")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("a category is named twice")
        return self


def request_message(fields: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in fields.items() if k != "signature"}
    return REQUEST_V1 + canonical_json(unsigned)


def sign_request(
    consumer: Signer,
    *,
    release_id: str,
    purpose: str,
    categories: Sequence[Category],
    period_start: int,
    period_end: int,
    description: str,
    created: int,
) -> ReleaseRequest:
    fields: dict[str, Any] = {
        "v": 1,
        "release_id": release_id,
        "consumer_key": b64encode(consumer.public_bytes),
        "purpose": purpose,
        "categories": [Category(c).value for c in categories],
        "period_start": period_start,
        "period_end": period_end,
        "description": description,
        "created": created,
    }
    return ReleaseRequest.model_validate({**fields, "signature": b64encode(consumer.sign(request_message(fields)))})


def request_is_valid(request: ReleaseRequest) -> bool:
    fields = request.model_dump(mode="json")
    return is_valid_signature(b64decode(request.consumer_key), request_message(fields), b64decode(request.signature))


def utc(seconds: int) -> str:
    """A time a person reads: ``2026-12-05 13:00 UTC``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


class _Counter:
    """Records and distinct subjects, by category."""

    def __init__(self) -> None:
        self.records: dict[str, int] = defaultdict(int)
        self.subjects: dict[str, set[str]] = defaultdict(set)

    def add(self, category: str, records: int, subject: str) -> None:
        self.records[category] += records
        self.subjects[category].add(subject)

    def as_json(self) -> dict[str, dict[str, int]]:
        return {c: {"records": self.records[c], "subjects": len(self.subjects[c])} for c in sorted(self.records)}


def _columns(category: Category) -> list[str]:
    from store.export import SCHEMAS  # pyarrow: the store's extra, loaded only when a manifest is made

    return [f"{f.name}: {f.type}" for f in SCHEMAS[category]]


def release_manifest(
    tx: StoreTx, request: ReleaseRequest, policy: ReleasePolicy, *, consumer: str, stewards_required: int, now: int
) -> dict[str, Any]:
    """The manifest stewards approve (see the module docstring): counts, exclusions, privacy checks, batches."""
    wanted = {c.value for c in request.categories}
    retention_cutoff = now - policy.retention_days * 86_400
    eligible, batches = _Counter(), []
    excluded: dict[str, _Counter] = {"purpose": _Counter(), "retention": _Counter(), "erasure": _Counter()}
    for row in tx.stored_batches():
        if row.manifest_json is None:
            continue
        manifest = read_manifest(row.manifest_json)
        if manifest.period_start < request.period_start or manifest.period_end > request.period_end:
            continue
        taken = False
        for category, count in manifest.record_counts.items():
            if category.value not in wanted or count == 0:
                continue
            receipts = [r for r in manifest.consent_receipts if r.category == category]
            if not receipts or any(request.purpose not in r.purposes for r in receipts):
                excluded["purpose"].add(category.value, count, row.subject_digest)
            elif manifest.period_end <= retention_cutoff:
                excluded["retention"].add(category.value, count, row.subject_digest)
            else:
                eligible.add(category.value, count, row.subject_digest)
                taken = True
        if taken:
            batches.append(row.batch_id)
    erased = [b for b in tx.list_batches(["erased"], 100_000) if b.subject_digest]
    for b in erased:  # an erased batch keeps no manifest: its categories and period are gone with it
        excluded["erasure"].add("all", b.record_count, b.subject_digest)
    k_check = {
        c: {"subjects": len(eligible.subjects[c]), "passed": len(eligible.subjects[c]) >= policy.k_min}
        for c in sorted(wanted)
    }
    return {
        "v": 1,
        "release_id": request.release_id,
        "consumer": consumer,
        "consumer_key": request.consumer_key,
        "purpose": request.purpose,
        "description": request.description,
        "categories": sorted(wanted),
        "period": {
            "from": utc(request.period_start),
            "to": utc(request.period_end),
            "from_epoch": request.period_start,
            "to_epoch": request.period_end,
        },
        "requested_at": utc(request.created),
        "computed_at": utc(now),
        "eligible": eligible.as_json(),
        "excluded": {reason: counter.as_json() for reason, counter in excluded.items()},
        "privacy_checks": {
            "k_distinct_subjects": {"k": policy.k_min, "by_category": k_check},
            "no_free_text": "every column is a number, a time or a closed vocabulary (no typed text, no titles, "
            "no paths: the workstation never captures them, and the store re-checks every batch's schema)",
            "columns": {c: _columns(Category(c)) for c in sorted(wanted)},
            "time_granularity": "each row is one aggregation window (start and end in UTC, to the second); "
            "no finer time is stored",
            "linkable_columns": LINKABLE_COLUMNS,
        },
        "retention_days": policy.retention_days,
        "licence": policy.licence,
        "contact": policy.contact,
        "approvals_required": stewards_required,
        "batches": sorted(batches),
    }


def manifest_sha256(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def below_k(manifest: dict[str, Any]) -> dict[str, int]:
    """Categories whose distinct subjects fall below k, with their counts."""
    checks = manifest["privacy_checks"]["k_distinct_subjects"]["by_category"]
    return {c: v["subjects"] for c, v in checks.items() if not v["passed"]}
