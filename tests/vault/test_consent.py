"""Consent state comes from the ledger only; policy narrows it; notices and pauses behave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devkit.factories import grant, may_capture, receipt_for
from protocol.categories import Category
from protocol.errors import ConsentError
from vault import consent_ops
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = MachinePolicy()


def test_everything_is_off_by_default(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        snapshot = vault.consent(POLICY)
        assert {s.state for s in snapshot.categories.values()} == {"not_granted"}
        assert not any(may_capture(snapshot, c, NOW) for c in Category)


def test_grant_receipt_carries_the_required_fields(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        receipt, created = consent_ops.grant(
            vault, POLICY, Category.MOUSE, method="cli", confirmation="interactive-prompt", now=NOW
        )
        assert created
        _, shown = consent_ops.notice_shown(Category.MOUSE, POLICY)
        import hashlib

        assert receipt.notice_sha256 == hashlib.sha256(shown.encode()).hexdigest()
        assert receipt.notice_id == "consentry.mouse" and receipt.notice_version == 1
        assert receipt.subject == vault.subject and receipt.policy_sha256 == POLICY.digest()
        assert receipt.retention_days == POLICY.retention_days and receipt.purposes and receipt.recipients
        assert receipt.collection_method == "cli" and receipt.lawful_basis.startswith("consent")
        (entry,) = vault.ledger.entries(("grant",))
        assert entry.body["receipt_id"] == receipt.receipt_id


def test_granting_twice_keeps_one_receipt(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        first = grant(vault, Category.KEYBOARD, NOW)
        second = grant(vault, Category.KEYBOARD, NOW + timedelta(minutes=1))
        assert first == second and len(list(vault.ledger.entries(("grant",)))) == 1


def test_revoke_is_one_act_like_grant(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW)
        assert receipt_for(vault.consent(POLICY), Category.KEYBOARD) == rid
        assert consent_ops.revoke(vault, POLICY, [Category.KEYBOARD], method="cli", now=NOW) == [Category.KEYBOARD]
        snapshot = vault.consent(POLICY)
        assert snapshot.categories[Category.KEYBOARD].state == "revoked"
        assert receipt_for(snapshot, Category.KEYBOARD) is None
        assert len(list(vault.ledger.entries(("grant",)))) == len(list(vault.ledger.entries(("revoke",))))
        assert consent_ops.revoke(vault, POLICY, [Category.KEYBOARD], method="cli", now=NOW) == []


def test_policy_forbids_a_grant_and_never_grants_itself(layout: Layout) -> None:
    narrow = MachinePolicy(allowed_categories=(Category.MOUSE,))
    with Vault.open(layout) as vault:
        with pytest.raises(ConsentError, match="does not offer 'keyboard'"):
            consent_ops.grant(vault, narrow, Category.KEYBOARD, method="cli", confirmation="yes-flag", now=NOW)
        assert vault.consent(narrow).categories[Category.MOUSE].state == "not_granted"
        grant(vault, Category.KEYBOARD, NOW, POLICY)
        snapshot = vault.consent(narrow)
        assert snapshot.categories[Category.KEYBOARD].state == "forbidden"
        assert not may_capture(snapshot, Category.KEYBOARD, NOW)
        assert may_capture(vault.consent(POLICY), Category.KEYBOARD, NOW)  # policy relaxed: the grant stands


def test_changed_notice_version_suspends_the_grant(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.APPS, NOW)
        body = next(vault.ledger.entries(("grant",))).body
        old = {k: v for k, v in body.items() if k not in ("v", "seq", "kind", "at")}
        old.update(receipt_id="0" * 32, notice_version=0)  # a grant made under an earlier notice
        with vault.transaction():
            vault.ledger.append("grant", old, NOW + timedelta(minutes=1))
        state = vault.consent(POLICY).categories[Category.APPS]
        assert state.state == "suspended" and "consent grant apps" in (state.reason or "")
        assert not may_capture(vault.consent(POLICY), Category.APPS, NOW)
        assert grant(vault, Category.APPS, NOW + timedelta(minutes=2)) not in (rid, "0" * 32)
        assert may_capture(vault.consent(POLICY), Category.APPS, NOW)


def test_pause_until_resumed(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        grant(vault, Category.MOUSE, NOW)
        consent_ops.pause(vault, until=None, method="cli", now=NOW)
        assert not may_capture(vault.consent(POLICY), Category.MOUSE, NOW + timedelta(days=400))
        assert consent_ops.resume(vault, POLICY, reason="employee", now=NOW) is True
        assert may_capture(vault.consent(POLICY), Category.MOUSE, NOW)
        assert consent_ops.resume(vault, POLICY, reason="employee", now=NOW) is False


def test_timed_pause_ends_by_itself_and_the_ledger_says_so(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        grant(vault, Category.MOUSE, NOW)
        consent_ops.pause(vault, until=NOW + timedelta(minutes=30), method="cli", now=NOW)
        snapshot = vault.consent(POLICY)
        assert not may_capture(snapshot, Category.MOUSE, NOW + timedelta(minutes=29))
        assert may_capture(snapshot, Category.MOUSE, NOW + timedelta(minutes=31))
        assert not consent_ops.settle_expired_pause(vault, POLICY, NOW + timedelta(minutes=10))
        assert consent_ops.settle_expired_pause(vault, POLICY, NOW + timedelta(minutes=31))
        last = list(vault.ledger.entries())[-1]
        assert last.kind == "resume" and last.body["reason"] == "pause-expired"


def test_pause_must_end_in_the_future(layout: Layout) -> None:
    with Vault.open(layout) as vault, pytest.raises(ValueError):
        consent_ops.pause(vault, until=NOW - timedelta(seconds=1), method="cli", now=NOW)


def test_policy_change_is_recorded_once(layout: Layout) -> None:
    with Vault.open(layout) as vault:
        assert consent_ops.record_policy(vault, POLICY, NOW)
        assert not consent_ops.record_policy(vault, POLICY, NOW)
        assert consent_ops.record_policy(vault, MachinePolicy(retention_days=7), NOW)


def test_erase_all_ends_every_grant(layout: Layout) -> None:
    from vault.shredding import erase_categories

    with Vault.open(layout) as vault:
        for c in Category:
            grant(vault, c, NOW)
        erase_categories(vault, list(Category), now=NOW, revoked_too=True)
        assert {s.state for s in vault.consent(POLICY).categories.values()} == {"revoked"}


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: {**b, "granted_everything": True},
        lambda b: {**b, "category": "screen"},
        lambda b: {**b, "receipt_id": "short"},
        lambda b: {**b, "notice_sha256": "x" * 64},
        lambda b: {**b, "confirmation": "assumed"},
        lambda b: {k: v for k, v in b.items() if k != "subject"},
        lambda b: {**b, "scope": {"folders": -1, "sha256": "0" * 64}},
    ],
)
def test_a_malformed_receipt_in_the_ledger_is_corruption_not_consent(layout: Layout, edit) -> None:
    from protocol.errors import VaultCorrupted
    from vault.consent import GrantReceipt

    with Vault.open(layout) as vault:
        receipt, _ = consent_ops.grant(vault, POLICY, Category.FILES, method="cli", confirmation="yes-flag", now=NOW)
        (entry,) = vault.ledger.entries(("grant",))
    body = entry.body
    assert GrantReceipt.from_ledger(body) == receipt  # the control: what the ledger holds reads back whole
    with pytest.raises(VaultCorrupted, match="grant receipt"):
        GrantReceipt.from_ledger(edit({**body, "scope": {"folders": 1, "sha256": "0" * 64}}))
