"""Batches on the workstation: sealing, the employee's hold, preview, veto and release."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.factories import apps_window, grant, keyboard_window, mouse_window, receipt_for
from protocol import decode_payload
from protocol.categories import Category
from protocol.errors import ConsentError
from vault import batches, consent_ops, outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.shredding import erase_categories
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600
POLICY = MachinePolicy(hold_hours=24)


@pytest.fixture
def vault(layout: Layout) -> Vault:
    v = Vault.open(layout)
    yield v
    v.close()


def _fill(vault: Vault) -> dict[Category, str]:
    r = {c: grant(vault, c, NOW - timedelta(hours=2)) for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)}
    vault.write_windows(
        [
            keyboard_window(T, r[Category.KEYBOARD]),
            mouse_window(T, r[Category.MOUSE]),
            apps_window(T + 60, r[Category.APPS]),
        ]
    )
    return r


def test_sealing_takes_every_unbatched_record_once(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    assert info is not None and info.state == "held"
    assert info.record_counts == {"keyboard": 1, "mouse": 1, "apps": 1}
    assert {c["name"]: c["passed"] for c in info.privacy_checks} and all(c["passed"] for c in info.privacy_checks)
    assert batches.seal_pending(vault, POLICY, NOW) is None  # nothing left to seal
    assert [e.kind for e in vault.ledger.entries()][-1] == "batch-sealed"


def test_preview_is_exactly_the_payload_with_app_tokens_rekeyed(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    data = batches.payload(vault, info.batch_id)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == info.payload_sha256
    records = decode_payload(data).records
    tokens = [f["app"] for r in records if r["category"] == "apps" for f in r["focus"]]
    assert "cat:ide" in tokens and "anon:0123456789abcdef" not in tokens  # re-keyed for this batch only


def test_records_of_a_withdrawn_grant_are_not_sealed(vault: Vault) -> None:
    _fill(vault)
    consent_ops.revoke(vault, POLICY, [Category.MOUSE], method="api", now=NOW)
    info = batches.seal_pending(vault, POLICY, NOW)
    assert "mouse" not in info.record_counts


def test_records_of_a_category_the_policy_now_forbids_are_not_sealed(vault: Vault) -> None:
    _fill(vault)
    narrow = MachinePolicy(allowed_categories=(Category.MOUSE,))
    info = batches.seal_pending(vault, narrow, NOW)
    assert info.record_counts == {"mouse": 1}


def test_veto_shreds_the_batch_and_its_records(vault: Vault, layout: Layout) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    (payload_blob,) = vault.db.execute("SELECT payload FROM batches").fetchone()
    vetoed = batches.veto(vault, info.batch_id, NOW)
    assert vetoed.state == "vetoed" and vault.count_windows() == 0
    raw = b"".join(
        Path(f"{layout.vault_db}{s}").read_bytes()
        for s in ("", "-wal", "-shm")
        if Path(f"{layout.vault_db}{s}").exists()
    )
    assert payload_blob not in raw
    with pytest.raises(Exception, match="holds no data"):
        batches.payload(vault, info.batch_id)
    with pytest.raises(ConsentError):
        batches.release(vault, info.batch_id, NOW)
    assert [e.kind for e in vault.ledger.entries()][-1] == "batch-vetoed"


def test_release_ends_the_hold_early(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    assert batches.release_expired_holds(vault, NOW) == []
    batches.release(vault, info.batch_id, NOW)
    assert outbox.get_batch(vault, info.batch_id).state == "released"


def test_hold_expiry_makes_a_batch_due_and_is_recorded(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    assert batches.release_expired_holds(vault, NOW + timedelta(hours=25)) == [info.batch_id]
    last = list(vault.ledger.entries(("batch-released",)))[-1]
    assert (last.body["batch_id"], last.body["by"]) == (info.batch_id, "hold-expired")
    with pytest.raises(ConsentError):  # already released by the expiry
        batches.release(vault, info.batch_id, NOW)


def test_submissions_chain_by_sequence(vault: Vault) -> None:
    _fill(vault)
    first = batches.seal_pending(vault, POLICY, NOW)
    batches.release(vault, first.batch_id, NOW)
    m1 = batches.prepare_submission(vault, first.batch_id, NOW)
    assert batches.mark_submitted(vault, first.batch_id, NOW)
    r = receipt_for(vault.consent(POLICY), Category.MOUSE)
    vault.write_windows([mouse_window(T + 120, r)])
    second = batches.seal_pending(vault, POLICY, NOW)
    batches.release(vault, second.batch_id, NOW)
    m2 = batches.prepare_submission(vault, second.batch_id, NOW)
    from protocol import NO_PREVIOUS_BATCH, manifest_digest

    assert (m1.seq, m1.prev_batch_hash) == (1, NO_PREVIOUS_BATCH)
    assert (m2.seq, m2.prev_batch_hash) == (2, manifest_digest(m1))
    assert m1.payload_sha256 == first.payload_sha256


def test_erasing_a_category_erases_unshipped_batches_holding_it(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    erase_categories(vault, [Category.KEYBOARD], now=NOW, revoked_too=False)
    assert outbox.get_batch(vault, info.batch_id).state == "erased"
    assert vault.count_windows() == 0  # the batch's other records went with it
    entry = list(vault.ledger.entries(("erase",)))[-1]
    assert entry.body["batches"] == [info.batch_id]


def test_manifest_never_contains_records(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    batches.release(vault, info.batch_id, NOW)
    manifest = batches.prepare_submission(vault, info.batch_id, NOW)
    text = manifest.model_dump_json()
    assert "key_counts" not in text and "focus" not in text and json.loads(text)["record_counts"]["apps"] == 1


def test_submitted_manifest_passes_every_privacy_check(vault: Vault) -> None:
    """The first window is aligned before the grant instant; it is still covered (grant < window end)."""
    r = grant(vault, Category.APPS, NOW)
    aligned = int(NOW.timestamp()) // 60 * 60  # starts before the grant, ends after it
    vault.write_windows([apps_window(aligned, r)])
    info = batches.seal_pending(vault, POLICY, NOW + timedelta(minutes=2))
    batches.release(vault, info.batch_id, NOW)
    manifest = batches.prepare_submission(vault, info.batch_id, NOW)
    assert manifest.failed_checks() == ()


def test_numbered_batch_cannot_be_vetoed_and_keeps_its_number(vault: Vault) -> None:
    """Once a manifest is numbered it may already be at the store: a veto would leave a hole in the chain."""
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    batches.release(vault, info.batch_id, NOW)
    manifest = batches.prepare_submission(vault, info.batch_id, NOW)
    with pytest.raises(ConsentError):
        batches.veto(vault, info.batch_id, NOW)
    assert batches.manifest_of(vault, info.batch_id) == manifest  # a retry sends exactly this
    with pytest.raises(ConsentError):
        batches.prepare_submission(vault, info.batch_id, NOW)  # never numbered twice


def test_state_changes_are_guarded_against_interleaving(vault: Vault, layout: Layout) -> None:
    """A second handle (another process) acting in between cannot be overwritten by a stale first one."""
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    with Vault.open(layout) as other:
        batches.veto(other, info.batch_id, NOW)
    assert batches.release_expired_holds(vault, NOW + timedelta(days=2)) == []
    assert outbox.get_batch(vault, info.batch_id).state == "vetoed"
    assert not batches.mark_submitted(vault, info.batch_id, NOW)
    assert not batches.mark_decision(vault, info.batch_id, "approved", "", NOW)
    assert not batches.mark_shipped(vault, info.batch_id, {}, NOW)
    assert outbox.get_batch(vault, info.batch_id).state == "vetoed"


def test_sealing_is_atomic_so_records_go_to_one_batch_only(vault: Vault, layout: Layout) -> None:
    _fill(vault)
    with Vault.open(layout) as other:
        first = batches.seal_pending(other, POLICY, NOW)
    assert batches.seal_pending(vault, POLICY, NOW) is None
    assert sum(first.record_counts.values()) == vault.count_windows() == 3
    assert {r[0] for r in vault.db.execute("SELECT batch_id FROM records")} == {first.batch_id}


def test_erasing_a_submitted_batch_marks_it_for_withdrawal(vault: Vault) -> None:
    _fill(vault)
    info = batches.seal_pending(vault, POLICY, NOW)
    batches.release(vault, info.batch_id, NOW)
    batches.prepare_submission(vault, info.batch_id, NOW)
    erase_categories(vault, [Category.MOUSE], now=NOW, revoked_too=False)
    assert outbox.get_batch(vault, info.batch_id).state == "withdrawing"
    assert vault.count_windows() == 0
    batches.mark_withdrawn(vault, info.batch_id, NOW)
    assert outbox.get_batch(vault, info.batch_id).state == "erased"
