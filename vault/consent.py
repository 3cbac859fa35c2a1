"""Consent receipts and the consent state, which is derived from the ledger and nothing else.

A category is capturable only when the employee's latest act for it is a grant, the grant's notice
version is the current one, the machine policy allows the category, and capture is not paused. The
policy can make a granted category ``forbidden``; it can never make an ungranted one capturable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from vault.categories import ALL_CATEGORIES, Category
from vault.ledger import LedgerEntry
from vault.modelconfig import BOUNDARY
from vault.notices import load_notice
from vault.policy import MachinePolicy
from vault.timeutil import parse_iso

RECEIPT_VERSION: Literal["consentry-receipt-v1"] = "consentry-receipt-v1"
LAWFUL_BASIS = "consent (GDPR Art. 6(1)(a)); withdrawable at any time (Art. 7(3))"
# Purpose identifiers (slugs, as they travel in manifests); the notice explains them in words.
PURPOSES: tuple[str, ...] = ("internal-work-pattern-models",)
FOREVER = datetime.max.replace(tzinfo=UTC)

ConsentStateName = Literal["granted", "not_granted", "revoked", "suspended", "forbidden"]


class GrantReceipt(BaseModel):
    """What the employee agreed to, after Kantara Consent Receipt v1.1 / ISO/IEC TS 27560 fields."""

    model_config = BOUNDARY

    receipt_version: Literal["consentry-receipt-v1"] = RECEIPT_VERSION
    receipt_id: str = Field(min_length=16, max_length=64)
    subject: str
    category: Category
    purposes: tuple[str, ...]
    retention_days: int
    recipients: tuple[str, ...]
    notice_id: str
    notice_version: int
    notice_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    collection_method: Literal["cli", "tray", "api"]
    collection_tool: str
    confirmation: Literal["interactive-prompt", "yes-flag"]
    granted_at: str
    lawful_basis: str = LAWFUL_BASIS
    policy_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CategoryConsent:
    """One category's consent state (derived from the ledger; not a boundary model)."""

    category: Category
    state: ConsentStateName
    current_notice_version: int
    receipt_id: str | None = None
    since: datetime | None = None
    granted_notice_version: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ReceiptSpan:
    """When one grant was in force: from its grant to its revoke (or erase), if any."""

    receipt: GrantReceipt
    granted_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class ConsentSnapshot:
    """Every category's state and the pause, at one ledger head."""

    categories: dict[Category, CategoryConsent]
    policy_sha256: str
    paused_until: datetime | None = None

    def is_paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def may_capture(self, category: Category, now: datetime) -> bool:
        return self.categories[category].state == "granted" and not self.is_paused(now)

    def receipt_for(self, category: Category) -> str | None:
        entry = self.categories[category]
        return entry.receipt_id if entry.state == "granted" else None


def receipt_spans(entries: Iterable[LedgerEntry]) -> dict[str, ReceiptSpan]:
    """Every grant ever made, by receipt id, with the moment it stopped being in force."""
    spans: dict[str, ReceiptSpan] = {}
    active: dict[str, str] = {}  # category -> receipt id
    for entry in entries:
        if entry.kind == "grant":
            fields = {k: v for k, v in entry.body.items() if k not in ("v", "seq", "kind", "at")}
            receipt = GrantReceipt.model_validate(fields)
            previous = active.get(receipt.category.value)
            if previous is not None and spans[previous].ended_at is None:
                spans[previous] = replace(spans[previous], ended_at=parse_iso(entry.at))
            spans[receipt.receipt_id] = ReceiptSpan(receipt=receipt, granted_at=parse_iso(entry.at))
            active[receipt.category.value] = receipt.receipt_id
        elif entry.kind in ("revoke", "erase"):
            for name in entry.body.get("categories", []):
                rid = active.pop(name, None)
                if rid is not None:
                    spans[rid] = replace(spans[rid], ended_at=parse_iso(entry.at))
    return spans


def derive_snapshot(entries: Iterable[LedgerEntry], policy: MachinePolicy) -> ConsentSnapshot:
    """Fold the ledger into the current consent state under ``policy``."""
    latest: dict[Category, LedgerEntry] = {}
    paused_until: datetime | None = None
    for entry in entries:
        if entry.kind == "grant":
            latest[Category(entry.body["category"])] = entry
        elif entry.kind in ("revoke", "erase"):
            for name in entry.body.get("categories", []):
                if Category(name) in latest:  # withdrawing what was never granted changes nothing
                    latest[Category(name)] = entry
        elif entry.kind == "pause":
            until = entry.body.get("until")
            paused_until = FOREVER if until is None else parse_iso(until)
        elif entry.kind == "resume":
            paused_until = None

    categories = {c: _category_state(c, latest.get(c), policy) for c in ALL_CATEGORIES}
    return ConsentSnapshot(categories=categories, paused_until=paused_until, policy_sha256=policy.digest())


def _category_state(category: Category, entry: LedgerEntry | None, policy: MachinePolicy) -> CategoryConsent:
    """One category's state from its latest grant/revoke/erase entry (None: never granted)."""
    current = load_notice(category).version
    if entry is None:
        state = CategoryConsent(category=category, state="not_granted", current_notice_version=current)
    elif entry.kind != "grant":
        state = CategoryConsent(
            category=category, state="revoked", since=parse_iso(entry.at), current_notice_version=current
        )
    else:
        granted_version = int(entry.body["notice_version"])
        stale = granted_version != current
        state = CategoryConsent(
            category=category,
            state="suspended" if stale else "granted",
            receipt_id=entry.body["receipt_id"],
            since=parse_iso(entry.at),
            granted_notice_version=granted_version,
            current_notice_version=current,
            reason=(
                f"the notice changed (version {granted_version} -> {current}); "
                f"read it and grant again: consentry consent grant {category.value}"
            )
            if stale
            else None,
        )
    if not policy.allows(category) and state.state in ("granted", "suspended"):
        state = replace(state, state="forbidden", reason="the machine policy does not offer this category")
    return state
