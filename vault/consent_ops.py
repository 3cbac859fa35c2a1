"""The employee's consent acts, each one ledger entry: grant, revoke, pause, resume.

Revoking takes exactly what granting takes (one command, one entry), as GDPR Art. 7(3) asks.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from protocol.categories import Category
from protocol.errors import ConsentError
from protocol.timeutil import iso
from vault.consent import (
    LAWFUL_BASIS,
    SCOPE_SECRET_NAME,
    FolderScope,
    GrantReceipt,
    folder_scope,
    policy_terms,
    recipients,  # noqa: F401  (re-exported)
)
from vault.notice_words import Section, plain_sections
from vault.notices import Notice, load_notice  # noqa: F401  (re-exported for the CLI)
from vault.policy import MachinePolicy
from vault.vault import Vault

Method = Literal["cli", "tray", "api", "page"]
Confirmation = Literal["interactive-prompt", "yes-flag", "page-checkbox", "page-checkbox-same-user"]
TOOL = "consentry/0.1.0"


def notice_shown(category: Category, policy: MachinePolicy) -> tuple[Notice, str]:
    """The notice and the exact text that is shown (and hashed into the receipt).

    A files grant's folders are not in it (the hash travels in batch manifests): the receipt records
    them apart, as a count and a keyed hash (``scope``).
    """
    notice = load_notice(category)
    return notice, notice.rendered(policy_terms(category, policy))


def notice_sections(category: Category, policy: MachinePolicy) -> tuple[Section, ...]:
    """The notice in plain-language sections (shown first; the exact text above is what a grant hashes)."""
    return plain_sections(category, policy_terms(category, policy))


def scope_of(vault: Vault, folders: Sequence[Path]) -> FolderScope:
    """The keyed scope of ``folders`` exactly as watched_folders.json lists them."""
    return folder_scope(folders, vault.local_secret(SCOPE_SECRET_NAME))


def grant(
    vault: Vault,
    policy: MachinePolicy,
    category: Category,
    *,
    method: Method,
    confirmation: Confirmation,
    now: datetime,
    folders: Sequence[Path] | None = None,
) -> tuple[GrantReceipt, bool]:
    """Record a grant; returns (receipt, created).

    An active grant that already covers these terms (and, for ``files``, exactly these ``folders``)
    is kept as is. Anything else is a new ledger entry with a new receipt: a changed folder scope, or
    terms wider than the ones granted (the category is then suspended until this is called).
    """
    if not policy.allows(category):
        raise ConsentError(
            f"the machine policy does not offer '{category.value}' on this computer; ask IT if you want it"
        )
    if folders is not None and category is not Category.FILES:
        raise ConsentError("only 'files' is granted for folders")
    vault.kek()  # a vault whose key is wrong or missing must not collect anything
    scope = scope_of(vault, folders) if folders is not None else None
    notice, text = notice_shown(category, policy)
    terms = policy_terms(category, policy)
    with vault.transaction():
        state = vault.consent(policy).categories[category]
        if state.state == "granted" and state.receipt_id and state.scope == scope:
            existing = vault.receipt_spans()[state.receipt_id].receipt
            return existing, False
        receipt = GrantReceipt(
            receipt_id=uuid.uuid4().hex,
            subject=vault.subject,
            category=category,
            purposes=terms.purposes,
            retention_days=terms.retention_days,
            recipients=terms.recipients,
            notice_id=notice.notice_id,
            notice_version=notice.version,
            notice_sha256=notice_sha256(text),
            collection_method=method,
            collection_tool=TOOL,
            confirmation=confirmation,
            granted_at=iso(now),
            lawful_basis=LAWFUL_BASIS,
            policy_sha256=policy.digest(),
            window_seconds=terms.window_seconds,
            store_key_sha256=terms.store_key_sha256,
            file_extensions=terms.file_extensions,
            scope=scope,
            hold_hours=terms.hold_hours,
            subject_rotation_days=terms.subject_rotation_days,
            excluded_apps=terms.excluded_apps,
            app_categories=terms.app_categories,
            approvals_required=terms.approvals_required,
            stewards_sha256=terms.stewards_sha256,
            controller=terms.controller,
        )
        vault.ledger.append("grant", receipt.to_json(exclude_none=True), now)
    return receipt, True


def revoke(
    vault: Vault, policy: MachinePolicy, categories: list[Category], *, method: Method, now: datetime
) -> list[Category]:
    """Withdraw consent for ``categories``; returns those that were in force (granted or suspended)."""
    with vault.transaction():
        snapshot = vault.consent(policy)
        active = [
            c
            for c in categories
            if snapshot.categories[c].receipt_id is not None
            and snapshot.categories[c].state in ("granted", "suspended", "forbidden")
        ]
        if active:
            vault.ledger.append(
                "revoke",
                {
                    "categories": [c.value for c in active],
                    "receipt_ids": [snapshot.categories[c].receipt_id for c in active],
                    "method": method,
                },
                now,
            )
    return active


def pause(vault: Vault, *, until: datetime | None, method: Method, now: datetime) -> None:
    """Pause every category, until ``until`` or until resumed."""
    if until is not None and until <= now:
        raise ValueError("a pause must end in the future")
    with vault.transaction():
        vault.ledger.append("pause", {"until": None if until is None else iso(until), "method": method}, now)


def resume(vault: Vault, policy: MachinePolicy, *, reason: Literal["employee", "pause-expired"], now: datetime) -> bool:
    """End a pause; returns False when nothing was paused."""
    with vault.transaction():
        if vault.consent(policy).paused_until is None:
            return False
        vault.ledger.append("resume", {"reason": reason}, now)
    return True


def settle_expired_pause(vault: Vault, policy: MachinePolicy, now: datetime) -> bool:
    """Record that a timed pause ran out, so the ledger shows when capture resumed by itself."""
    snapshot = vault.consent(policy)
    if snapshot.paused_until is not None and not snapshot.is_paused(now):
        return resume(vault, policy, reason="pause-expired", now=now)
    return False


def record_policy(vault: Vault, policy: MachinePolicy, now: datetime) -> bool:
    """Note a new machine policy in the ledger (once per distinct policy)."""
    digest = policy.digest()
    with vault.transaction():
        last = None
        for entry in vault.ledger.entries(("policy-changed",)):
            last = entry.body.get("policy_sha256")
        if last == digest:
            return False
        vault.ledger.append(
            "policy-changed",
            {
                "policy_sha256": digest,
                "allowed_categories": [c.value for c in policy.allowed_categories],
                "retention_days": policy.retention_days,
                "hold_hours": policy.hold_hours,
                # The test/demo-only override is auditable here, not only in the agent's log.
                "allow_short_hold_for_testing": policy.allow_short_hold_for_testing,
            },
            now,
        )
    return True


def notice_sha256(text: str) -> str:
    """What a receipt records of the notice shown: the SHA-256 of exactly that text (the local page checks it too)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
