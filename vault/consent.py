"""Consent receipts and the consent state, which is derived from the ledger and nothing else.

A category is capturable only when the employee's latest act for it is a grant, the grant's notice
version is the current one, the grant's recorded terms cover the machine policy's terms, the policy
allows the category, and capture is not paused. The policy can make a granted category ``forbidden``
or ``suspended``; it can never make an ungranted one capturable, nor widen what a grant covers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from protocol import domains
from protocol.categories import ALL_CATEGORIES, Category
from protocol.errors import VaultCorrupted
from protocol.timeutil import parse_iso
from vault.ledger import LedgerEntry
from vault.notices import Terms, load_notice
from vault.policy import MachinePolicy

# v2 receipts record every term shown (store key, time window, file extensions, folder scope); v3 also the
# release and exclusion terms (hold, pseudonym rotation, exclusions, app categories, stewards). An older
# receipt cannot prove what it covered, so it is suspended until the employee grants again.
RECEIPT_VERSION: Literal["consentry-receipt-v3"] = "consentry-receipt-v3"
LAWFUL_BASIS = "consent (GDPR Art. 6(1)(a)); withdrawable at any time (Art. 7(3))"
# Purpose identifiers (slugs, as they travel in manifests); the notice explains them in words.
PURPOSES: tuple[str, ...] = ("internal-work-pattern-models",)
FOREVER = datetime.max.replace(tzinfo=UTC)
NOBODY = "nobody: no store is configured, data stays on this computer"
# The vault secret that keys the folder-scope hash, so the hash proves nothing about a guessed path.
SCOPE_SECRET_NAME = "folder-scope"

ConsentStateName = Literal["granted", "not_granted", "revoked", "suspended", "forbidden"]


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _check_sha256(name: str, value: str | None) -> None:
    if value is not None and not _SHA256_HEX.match(value):
        raise ValueError(f"{name} must be 64 lowercase hex digits")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}")


@dataclass(frozen=True)
class FolderScope:
    """Which folders a ``files`` grant covers: a count and a keyed hash, never a path."""

    folders: int
    sha256: str

    def __post_init__(self) -> None:
        if self.folders < 0:
            raise ValueError("scope.folders must be zero or more")
        _check_sha256("scope.sha256", self.sha256)


def folder_scope(folders: Iterable[object], secret: bytes) -> FolderScope:
    """The scope of exactly these folders (as written in watched_folders.json), keyed by ``secret``."""
    names = sorted({str(folder) for folder in folders})
    message = domains.FOLDER_SCOPE_V1 + "\x00".join(names).encode("utf-8")
    return FolderScope(folders=len(names), sha256=hmac.new(secret, message, hashlib.sha256).hexdigest())


def recipients(policy: MachinePolicy) -> tuple[str, ...]:
    return (policy.store.url,) if policy.store else (NOBODY,)


def policy_terms(category: Category, policy: MachinePolicy) -> Terms:
    """The terms the machine policy sets for ``category`` now: what a notice shows and a grant covers."""
    store_key = None
    org = policy.organisation
    organisation = (org.name, org.controller, org.contact, org.works_council or "") if org is not None else None
    if policy.store is not None:
        store_key = hashlib.sha256(base64.b64decode(policy.store.public_key)).hexdigest()
    apps = tuple(sorted((app, kind.value) for app, kind in policy.app_categories.items()))
    return Terms(
        purposes=PURPOSES,
        window_seconds=policy.aggregation_window_seconds,
        retention_days=policy.retention_days,
        recipients=recipients(policy),
        store_key_sha256=store_key,
        file_extensions=policy.file_extensions if category is Category.FILES else None,
        hold_hours=policy.hold_hours,
        subject_rotation_days=policy.subject_rotation_days,
        excluded_apps=tuple(policy.excluded_apps),
        app_categories=apps if category is Category.APPS else None,
        approvals_required=policy.stewards.approvals_required,
        stewards_sha256=stewards_sha256(policy),
        organisation=organisation,
        controller=org.controller if org is not None else None,
    )


def stewards_sha256(policy: MachinePolicy) -> str:
    """The data stewards as a grant records them: the SHA-256 of their public keys, sorted (names aside)."""
    keys = sorted(policy.stewards.keys.values())
    return hashlib.sha256(domains.STEWARD_SET_V1 + "\x00".join(keys).encode("ascii")).hexdigest()


RECEIPT_VERSIONS = ("consentry-receipt-v1", "consentry-receipt-v2", RECEIPT_VERSION)
_LEDGER_ENTRY_KEYS = ("v", "seq", "kind", "at")  # the ledger's own fields around a receipt
METHODS = ("cli", "tray", "api", "page")
# page-checkbox-same-user: ticked on the notice page, in a session whose every connection was checked to
# come from the employee's own account (kit.web.peer). Plain page-checkbox: grants made before that.
CONFIRMATIONS = ("interactive-prompt", "yes-flag", "page-checkbox", "page-checkbox-same-user")


@dataclass(frozen=True)
class GrantReceipt:
    """What the employee agreed to, after Kantara Consent Receipt v1.1 / ISO/IEC TS 27560 fields.

    Built by ``consent_ops.grant`` from values the code computed, and read back from the hash-chained
    ledger with ``from_ledger``; ``__post_init__`` checks every field either way (no pydantic on the
    read path, which every CLI command takes).
    """

    receipt_id: str
    subject: str
    category: Category
    purposes: tuple[str, ...]
    retention_days: int
    recipients: tuple[str, ...]
    notice_id: str
    notice_version: int
    notice_sha256: str
    collection_method: Literal["cli", "tray", "api", "page"]
    collection_tool: str
    confirmation: Literal["interactive-prompt", "yes-flag", "page-checkbox", "page-checkbox-same-user"]
    granted_at: str
    policy_sha256: str
    receipt_version: Literal["consentry-receipt-v1", "consentry-receipt-v2", "consentry-receipt-v3"] = RECEIPT_VERSION
    lawful_basis: str = LAWFUL_BASIS
    # Since v2: the rest of the terms shown (None in a v1 receipt, or when there is no store).
    window_seconds: int | None = None
    store_key_sha256: str | None = None
    file_extensions: tuple[str, ...] | None = None
    scope: FolderScope | None = None
    # Since v3: the release and exclusion terms (see vault.notices.Terms).
    hold_hours: float | None = None
    subject_rotation_days: int | None = None
    excluded_apps: tuple[str, ...] | None = None
    app_categories: tuple[tuple[str, str], ...] | None = None  # apps only
    approvals_required: int | None = None
    stewards_sha256: str | None = None
    # The data controller the notice named (policy [organisation]); absent when it named none.
    controller: str | None = None

    def __post_init__(self) -> None:
        _check_choice("receipt_version", self.receipt_version, RECEIPT_VERSIONS)
        if not 16 <= len(self.receipt_id) <= 64:
            raise ValueError("receipt_id must be 16 to 64 characters")
        if not isinstance(self.category, Category):
            raise ValueError("category must be a Category")
        _check_sha256("notice_sha256", self.notice_sha256)
        _check_sha256("policy_sha256", self.policy_sha256)
        _check_sha256("store_key_sha256", self.store_key_sha256)
        _check_sha256("stewards_sha256", self.stewards_sha256)
        _check_choice("collection_method", self.collection_method, METHODS)
        _check_choice("confirmation", self.confirmation, CONFIRMATIONS)

    @classmethod
    def from_ledger(cls, body: dict[str, Any]) -> GrantReceipt:
        """The receipt in a ``grant`` entry's body; a malformed one is ``VaultCorrupted``, naming the field."""
        fields = {k: v for k, v in body.items() if k not in _LEDGER_ENTRY_KEYS}
        try:
            extensions, scope = fields.get("file_extensions"), fields.get("scope")
            excluded, apps = fields.get("excluded_apps"), fields.get("app_categories")
            return cls(
                **{
                    **fields,
                    "category": Category(fields["category"]),
                    "purposes": tuple(fields["purposes"]),
                    "recipients": tuple(fields["recipients"]),
                    "file_extensions": tuple(extensions) if extensions is not None else None,
                    "scope": FolderScope(**scope) if scope is not None else None,
                    "excluded_apps": tuple(excluded) if excluded is not None else None,
                    "app_categories": tuple(sorted(apps.items())) if apps is not None else None,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultCorrupted(f"a grant receipt in the consent ledger is malformed: {exc}") from None

    def to_json(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """JSON values, as recorded in the ledger (``exclude_none``) and shown to the employee."""
        data = asdict(self)
        data["category"] = self.category.value
        for name in ("purposes", "recipients", "file_extensions", "excluded_apps"):
            if data[name] is not None:
                data[name] = list(data[name])
        if self.app_categories is not None:
            data["app_categories"] = dict(self.app_categories)
        if exclude_none:
            data = {k: v for k, v in data.items() if v is not None}
        return data

    def terms(self) -> Terms | None:
        """The terms this grant covers; None for a v1 or v2 receipt, which did not record them all."""
        if self.receipt_version != RECEIPT_VERSION or self.window_seconds is None:
            return None
        return Terms(
            purposes=self.purposes,
            window_seconds=self.window_seconds,
            retention_days=self.retention_days,
            recipients=self.recipients,
            store_key_sha256=self.store_key_sha256,
            file_extensions=self.file_extensions,
            hold_hours=self.hold_hours,
            subject_rotation_days=self.subject_rotation_days,
            excluded_apps=self.excluded_apps,
            app_categories=self.app_categories,
            approvals_required=self.approvals_required,
            stewards_sha256=self.stewards_sha256,
            controller=self.controller,
        )


def _real_recipients(names: Iterable[str]) -> set[str]:
    return {name.rstrip("/") for name in names if name != NOBODY}


def widening(granted: Terms, current: Terms) -> list[str]:
    """How ``current`` goes beyond ``granted``, in words (empty: the grant covers it).

    Material: longer retention, a new purpose, a new recipient or store key, a shorter time window
    (finer records), more file extensions, a shorter hold before release, a pseudonym kept longer, an
    exclusion removed, an application newly named by category, fewer steward approvals, another set
    of stewards. Narrowing (shorter retention, no store, a longer window, fewer extensions or
    purposes, a longer hold, more exclusions, more approvals) is not: it gives the data less reach
    than the employee accepted. A term the grant did not record (None) counts as widened.
    """
    changes = []
    if current.retention_days > granted.retention_days:
        changes.append(f"retention {granted.retention_days} -> {current.retention_days} days")
    new_purposes = sorted(set(current.purposes) - set(granted.purposes))
    if new_purposes:
        changes.append(f"new purpose: {', '.join(new_purposes)}")
    if _real_recipients(current.recipients) - _real_recipients(granted.recipients):
        changes.append("a new recipient of approved batches")
    elif current.store_key_sha256 is not None and current.store_key_sha256 != granted.store_key_sha256:
        changes.append("the store's key changed")
    if current.window_seconds < granted.window_seconds:
        changes.append(f"time window {granted.window_seconds} -> {current.window_seconds} s (finer records)")
    if current.file_extensions is not None:
        more = set(current.file_extensions) - set(granted.file_extensions or ())
        if more:
            changes.append(f"{len(more)} more file extension(s) recorded")
    changes += _release_widening(granted, current)
    return changes


def _release_widening(granted: Terms, current: Terms) -> list[str]:
    """How the release and exclusion terms (receipt v3) go beyond the grant's, in words."""
    changes = []
    if current.hold_hours is not None and (granted.hold_hours is None or current.hold_hours < granted.hold_hours):
        changes.append(f"hold before release {granted.hold_hours or 0:g} -> {current.hold_hours:g} hours")
    rotation, granted_rotation = current.subject_rotation_days, granted.subject_rotation_days
    if rotation is not None and (granted_rotation is None or rotation > granted_rotation):
        changes.append(f"the same pseudonym kept {granted_rotation or 0} -> {rotation} days")
    if current.excluded_apps is not None:
        removed = set(granted.excluded_apps or ()) - set(current.excluded_apps)
        if removed or granted.excluded_apps is None:
            changes.append(f"{len(removed)} application(s) no longer excluded from capture")
    if current.app_categories is not None:
        added = set(current.app_categories) - set(granted.app_categories or ())
        if added:
            changes.append(f"{len(added)} application(s) newly named by category")
    approvals = current.approvals_required
    if approvals is not None and (granted.approvals_required is None or approvals < granted.approvals_required):
        changes.append(f"steward approvals per batch {granted.approvals_required or 0} -> {approvals}")
    if current.stewards_sha256 is not None and current.stewards_sha256 != granted.stewards_sha256:
        changes.append("the set of data stewards who approve batches changed")
    # Naming a controller where none was named gives the data no more reach; another one does.
    if current.controller is not None and granted.controller not in (None, current.controller):
        changes.append(f"the data controller changed ({granted.controller} -> {current.controller})")
    return changes


def uncovered(receipt: GrantReceipt, policy: MachinePolicy) -> list[str]:
    """Why ``receipt`` does not cover the policy's terms for its category (empty: it does)."""
    granted = receipt.terms()
    if granted is None:
        return ["this grant was recorded before receipts covered every term shown (release and exclusion terms)"]
    return widening(granted, policy_terms(receipt.category, policy))


def pause_in_force(paused_until: datetime | None, now: datetime) -> bool:
    """The one pause rule: a pause holds until its end (``FOREVER``: until the employee resumes)."""
    return paused_until is not None and now < paused_until


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
    changes: tuple[str, ...] = ()  # how the policy's terms now go beyond the grant's (when suspended)
    scope: FolderScope | None = None  # files: the folder scope the grant covers


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class ReceiptSpan(NamedTuple):
    """When one grant was in force: from its grant to its revoke (or erase), if any."""

    receipt: GrantReceipt
    granted_at: datetime
    ended_at: datetime | None = None
    replaced_by: str | None = None  # a later grant of the category ended it, not a withdrawal


@dataclass(frozen=True)
class ConsentSnapshot:
    """Every category's state and the pause, at one ledger head."""

    categories: dict[Category, CategoryConsent]
    policy_sha256: str
    paused_until: datetime | None = None

    def is_paused(self, now: datetime) -> bool:
        return pause_in_force(self.paused_until, now)


def withheld(snapshot: ConsentSnapshot, reason: str) -> ConsentSnapshot:
    """Every grant held back (fail closed) because the ledger it comes from cannot be trusted now."""
    categories = {
        c: replace(s, state="suspended", reason=reason) if s.state in ("granted", "suspended") else s
        for c, s in snapshot.categories.items()
    }
    return replace(snapshot, categories=categories)


def receipt_spans(entries: Iterable[LedgerEntry]) -> dict[str, ReceiptSpan]:
    """Every grant ever made, by receipt id, with the moment it stopped being in force."""
    spans: dict[str, ReceiptSpan] = {}
    active: dict[str, str] = {}  # category -> receipt id
    for entry in entries:
        if entry.kind == "grant":
            receipt = GrantReceipt.from_ledger(entry.body)
            previous = active.get(receipt.category.value)
            if previous is not None and spans[previous].ended_at is None:
                spans[previous] = spans[previous]._replace(ended_at=parse_iso(entry.at), replaced_by=receipt.receipt_id)
            spans[receipt.receipt_id] = ReceiptSpan(receipt=receipt, granted_at=parse_iso(entry.at))
            active[receipt.category.value] = receipt.receipt_id
        elif entry.kind in ("revoke", "erase"):
            for name in entry.body.get("categories", []):
                rid = active.pop(name, None)
                if rid is not None:
                    spans[rid] = spans[rid]._replace(ended_at=parse_iso(entry.at))
    return spans


def sealable_receipts(spans: dict[str, ReceiptSpan], policy: MachinePolicy) -> set[str]:
    """Receipts whose records may go into a batch under ``policy`` now.

    Consent for the category must still be in force (this grant, or later grants that replaced it
    with no withdrawal in between), the policy must allow the category, and the receipt's own terms
    must cover the policy's: records are never released under wider terms than they were captured
    under, even after the employee accepted the wider terms for what is captured from then on.
    """

    def in_force(rid: str) -> bool:
        seen = set()
        while rid not in seen:
            seen.add(rid)
            span = spans[rid]
            if span.ended_at is None:
                return True
            if span.replaced_by is None or span.replaced_by not in spans:
                return False
            rid = span.replaced_by
        return False

    return {
        rid
        for rid, span in spans.items()
        if policy.allows(span.receipt.category) and in_force(rid) and not uncovered(span.receipt, policy)
    }


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
        receipt = GrantReceipt.from_ledger(entry.body)
        granted_version = receipt.notice_version
        changes = tuple(uncovered(receipt, policy))
        reason = None
        if granted_version != current:
            reason = (
                f"the notice changed (version {granted_version} -> {current}); "
                f"read it and grant again: consentry consent grant {category.value}"
            )
        elif changes:
            reason = (
                f"the terms changed since you granted ({'; '.join(changes)}); nothing is captured until "
                f"you read the new notice and grant again: consentry consent grant {category.value}"
            )
        state = CategoryConsent(
            category=category,
            state="granted" if reason is None else "suspended",
            receipt_id=receipt.receipt_id,
            since=parse_iso(entry.at),
            granted_notice_version=granted_version,
            current_notice_version=current,
            reason=reason,
            changes=changes,
            scope=receipt.scope,
        )
    if not policy.allows(category) and state.state in ("granted", "suspended"):
        state = replace(state, state="forbidden", reason="the machine policy does not offer this category")
    return state
