"""What the store and a steward's tool exchange about review sets, and the figures both compute.

Pending batches are grouped by the UTC day their period starts, their notice versions and the digest of
their consent terms (``terms_sha256``: each receipt's category, notice id, version and text hash, lawful
basis and purposes). Manifests carry no machine-policy digest, so the terms digest stands for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from protocol.canonical import canonical_json, sha256_hex
from protocol.categories import Category
from protocol.fields import FROZEN, BatchId, EpochSeconds, KeyId, Sha256Hex
from protocol.manifest import BatchManifest
from protocol.review_set import SetApproval, SetId, SetRejection
from protocol.store_api import BatchState

Day = str  # YYYY-MM-DD, UTC


class GroupKey(BaseModel):
    """What the batches of one review set share."""

    model_config = FROZEN
    day: Day = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    notices: tuple[str, ...] = Field(description="'notice_id vVERSION', sorted")
    terms_sha256: Sha256Hex


def day_of(ts: int) -> Day:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def group_key(manifest: BatchManifest) -> GroupKey:
    terms = sorted(
        (
            str(r.category),
            r.notice_id,
            r.notice_version,
            r.notice_sha256,
            r.lawful_basis,
            sorted(r.purposes),
        )
        for r in manifest.consent_receipts
    )
    notices = tuple(sorted({f"{r.notice_id} v{r.notice_version}" for r in manifest.consent_receipts}))
    # Receipt ids and grant times differ per employee; the terms do not.
    return GroupKey(day=day_of(manifest.period_start), notices=notices, terms_sha256=sha256_hex(canonical_json(terms)))


class GroupSummary(BaseModel):
    model_config = FROZEN
    key: GroupKey
    pending: int


class CreateSet(BaseModel):
    """Freeze the pending batches of one group into a review set."""

    model_config = FROZEN
    key: GroupKey


class CountSummary(BaseModel):
    """A distribution of per-batch counts: how many batches, their sum and five quantiles."""

    model_config = FROZEN
    batches: int
    total: int
    minimum: int
    q1: float
    median: float
    q3: float
    maximum: int


class PeriodFigures(BaseModel):
    """Per-category record counts of a period's batches (categories a batch lacks count as 0)."""

    model_config = FROZEN
    batches: int
    per_category: dict[Category, CountSummary]


def summarize(values: Sequence[int]) -> CountSummary:
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = median = q3 = float(ordered[0])
    return CountSummary(
        batches=len(ordered),
        total=sum(ordered),
        minimum=ordered[0],
        q1=q1,
        median=median,
        q3=q3,
        maximum=ordered[-1],
    )


def figures(manifests: Iterable[BatchManifest]) -> PeriodFigures | None:
    counts: dict[Category, list[int]] = {}
    listed = list(manifests)
    if not listed:
        return None
    categories = sorted({c for m in listed for c in m.record_counts}, key=str)
    for c in categories:
        counts[c] = [m.record_counts.get(c, 0) for m in listed]
    return PeriodFigures(batches=len(listed), per_category={c: summarize(v) for c, v in counts.items()})


FENCE = 3.0  # Tukey's "far out" fences: outside Q1 - 3 IQR .. Q3 + 3 IQR


def deviations(manifests: Sequence[BatchManifest], period: PeriodFigures | None) -> dict[str, list[str]]:
    """Batch id -> why it deviates: a failed check, or a category count outside the set's far-out fences."""
    found: dict[str, list[str]] = {}
    for m in manifests:
        reasons = [f"failed check {name}" for name in m.failed_checks()]
        for c, s in (period.per_category if period else {}).items():
            n = m.record_counts.get(c, 0)
            spread = max(s.q3 - s.q1, 1.0)  # identical counts everywhere: one record off is not an outlier
            low, high = s.q1 - FENCE * spread, s.q3 + FENCE * spread
            if not low <= n <= high:
                reasons.append(f"{c} {n} records, outside {max(low, 0):g}–{high:g} for this set")
        if reasons:
            found[m.batch_id] = reasons
    return found


class SetEntry(BaseModel):
    """One member as the store shows it; the steward's tool recomputes ``manifest_sha256`` from ``manifest``."""

    model_config = FROZEN
    leaf_index: int = Field(ge=0)
    batch_id: BatchId
    manifest_sha256: Sha256Hex
    state: BatchState
    manifest: BatchManifest | None = Field(description="None once the subject is erased or the batch withdrawn")


class ReviewSetView(BaseModel):
    model_config = FROZEN
    set_id: SetId
    key: GroupKey
    created: EpochSeconds
    created_by: KeyId
    root: Sha256Hex = Field(description="the store's root over its members; the steward's tool recomputes it")
    entries: tuple[SetEntry, ...]
    previous: PeriodFigures | None = Field(description="the previous day's batches under the same terms")
    approvals: tuple[SetApproval, ...]
    rejections: tuple[SetRejection, ...] = Field(default=(), description="stewards' rejections of the whole set")
    approvals_required: int


class SetOutcome(BaseModel):
    """What one set approval did: batches whose approval now counts, and those it could not touch."""

    model_config = FROZEN
    set_id: SetId
    counted: int
    approved: int = Field(description="batches that now have their quorum")
    skipped: dict[BatchId, str] = Field(description="batch id -> why (rejected, withdrawn, already decided ...)")


class SetRejectionOutcome(BaseModel):
    """What one set rejection did: batches it stopped, and those it could not touch."""

    model_config = FROZEN
    set_id: SetId
    rejected: int = Field(description="batches now rejected")
    skipped: dict[BatchId, str] = Field(description="batch id -> why (stored, withdrawn, already decided ...)")
