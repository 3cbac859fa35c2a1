"""The agent's side of the release path against a real store on 127.0.0.1 (dir backend)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import shipping
from agent.cli.main import cli
from devkit.factories import apps_window, grant, keyboard_window, mouse_window, receipt_for
from devkit.store_kit import Harness, Stewards, StoreProcess, as_version_1, free_port, running_store, write_policy
from kit.store_client import RetryPolicy, StoreClient
from protocol import b64decode, b64encode, manifest_digest, sign_approval
from protocol.categories import Category
from store.auth import issue_token
from store.keys import StoreKeys
from vault import batches, outbox
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600


def _policy(url: str, store_public: bytes, log_key: bytes, stewards: Stewards) -> MachinePolicy:
    keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(stewards.signers)}
    return MachinePolicy(
        hold_hours=1,
        allow_short_hold_for_testing=True,  # below the 24 h floor: tests only
        store=StoreConfig(url=url, public_key=b64encode(store_public), log_key=b64encode(log_key)),
        stewards=StewardConfig(keys=keys, approvals_required=stewards.required),
    )


def _filled_vault(layout: Layout, policy: MachinePolicy) -> Vault:
    vault = Vault.open(layout)
    # Granted under the policy that ships: a grant made with no store would not cover sending anything.
    r = {
        c: grant(vault, c, NOW - timedelta(hours=3), policy) for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)
    }
    vault.write_windows(
        [keyboard_window(T, r[Category.KEYBOARD]), mouse_window(T, r[Category.MOUSE]), apps_window(T, r[Category.APPS])]
    )
    return vault


def _approve(store: Harness, batch_id: str, decision: str = "approve", reason: str | None = None) -> None:
    with store.steward_client(store.stewards.signers[0]) as client:
        digest = client.review(batch_id).status.manifest_sha256
        client.decide(
            sign_approval(
                store.stewards.signers[0], batch_id, digest, decision, created=int(NOW.timestamp()), reason=reason
            )
        )  # type: ignore[arg-type]


def _submitted(vault: Vault, policy: MachinePolicy) -> outbox.BatchInfo:
    """Seal what the vault holds, release it and submit it for review (the stewards have not decided)."""
    info = batches.seal_pending(vault, policy, NOW)
    assert info is not None
    batches.release(vault, info.batch_id, NOW)
    assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
    return info


@pytest.fixture
def store(tmp_path: Path) -> Harness:
    with running_store("dir", tmp_path, Stewards.make(1, 1)) as harness:
        yield harness


@pytest.fixture
def enrolled(store: Harness, layout: Layout) -> tuple[Vault, MachinePolicy]:
    policy = _policy(store.url, store.keys.seal.public_bytes, store.keys.log.public_bytes, store.stewards)
    vault = _filled_vault(layout, policy)
    shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
    yield vault, policy
    vault.close()


def test_approved_batch_is_shipped_once_with_a_verified_receipt_and_shredded_locally(store, enrolled) -> None:
    vault, policy = enrolled
    info = batches.seal_pending(vault, policy, NOW)
    assert shipping.sync(vault, policy, NOW).submitted == []  # still held: nothing leaves
    batches.release(vault, info.batch_id, NOW)
    assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
    assert store.stored()[0] == 0  # submitted is not stored: the stewards have not approved
    _approve(store, info.batch_id)
    report = shipping.sync(vault, policy, NOW)
    assert report.approved == report.shipped == [info.batch_id] and not report.errors, report.errors
    shipped = outbox.get_batch(vault, info.batch_id)
    assert shipped.state == "shipped" and shipped.receipt and vault.count_windows() == 0
    assert store.stored()[:2] == (1, 3)
    assert shipping.sync(vault, policy, NOW).shipped == []  # nothing twice
    assert store.stored()[:2] == (1, 3)
    kinds = [e.kind for e in vault.ledger.entries()]
    assert (
        kinds.index("batch-sealed")
        < kinds.index("batch-released")
        < kinds.index("batch-approved")
        < kinds.index("batch-shipped")
    )


def test_vetoed_batch_never_reaches_the_store(store, enrolled) -> None:
    vault, policy = enrolled
    info = batches.seal_pending(vault, policy, NOW)
    batches.veto(vault, info.batch_id, NOW)
    report = shipping.sync(vault, policy, NOW + timedelta(days=2))  # long after the hold
    assert report.submitted == [] and report.shipped == []
    with store.steward_client(store.stewards.signers[0]) as client:
        assert client.queue() == []
    assert store.stored() == (0, 0, 0)


def test_rejection_reaches_the_employee_and_nothing_is_stored(store, enrolled) -> None:
    vault, policy = enrolled
    info = _submitted(vault, policy)
    _approve(store, info.batch_id, "reject", "too few subjects this week")
    assert shipping.sync(vault, policy, NOW).rejected == [info.batch_id]
    rejected = outbox.get_batch(vault, info.batch_id)
    assert rejected.state == "rejected" and "too few subjects" in (rejected.last_error or "")
    assert store.stored()[:2] == (0, 0)


def test_enrollment_refuses_a_store_whose_key_is_not_the_policys_without_spending_the_token(store, layout) -> None:
    other = _policy(store.url, bytes(32), store.keys.log.public_bytes, store.stewards)
    token = issue_token(store.backend, store.settings, int(NOW.timestamp()))
    with Vault.open(layout) as vault:
        with pytest.raises(shipping.ShippingError, match="not the one in the machine policy"):
            shipping.enroll(vault, other, token, NOW)
        assert "store_url" not in vault.meta
        right = _policy(store.url, store.keys.seal.public_bytes, store.keys.log.public_bytes, store.stewards)
        assert shipping.enroll(vault, right, token, NOW) == vault.device_key.kid  # the same token still works
        again = issue_token(store.backend, store.settings, int(NOW.timestamp()))
        assert shipping.enroll(vault, right, again, NOW) == vault.device_key.kid  # a lost answer: enroll again


def test_store_outage_keeps_the_batch_encrypted_and_shows_why_then_ships(tmp_path: Path, layout: Layout) -> None:
    stewards = Stewards.make(1, 1)
    data = tmp_path / "store"
    data.mkdir()
    port = free_port()
    proc = StoreProcess(data, write_policy(tmp_path / "store-policy.toml", stewards), backend="dir", port=port).start()
    try:
        keys_dir = data / "keys"
        keys, _ = StoreKeys.load_or_create(keys_dir)
        policy = _policy(proc.url, keys.seal.public_bytes, keys.log.public_bytes, stewards)
        token = CliRunner().invoke(cli, ["store", "token", "--data", str(data), "--json"]).output
        vault = _filled_vault(layout, policy)
        shipping.enroll(vault, policy, json.loads(token)["token"], NOW)
        info = batches.seal_pending(vault, policy, NOW)
        batches.release(vault, info.batch_id, NOW)
        proc.stop()
        with shipping.client_for(vault, policy, retry=RetryPolicy(attempts=1)) as client:
            report = shipping.sync(vault, policy, NOW, client)
        assert report.submitted == [] and report.errors
        held = outbox.get_batch(vault, info.batch_id)
        assert held.state == "submitting" and held.last_error and vault.count_windows() == 3  # numbered, kept
        assert "ConnectError" in held.last_error or "TransportError" in held.last_error or "Connect" in held.last_error
        proc.start()
        assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
        with StoreClient(proc.url, signer=stewards.signers[0], role="steward") as client:
            manifest = batches.manifest_of(vault, info.batch_id)
            client.decide(
                sign_approval(
                    stewards.signers[0],
                    info.batch_id,
                    manifest_digest(manifest),
                    "approve",
                    created=int(NOW.timestamp()),
                )
            )
        assert shipping.sync(vault, policy, NOW).shipped == [info.batch_id]
        assert outbox.get_batch(vault, info.batch_id).last_error is None
        vault.close()
    finally:
        proc.stop()


def test_erasure_request_reaches_the_store_and_its_receipt_is_kept(store, enrolled) -> None:
    vault, policy = enrolled
    info = _submitted(vault, policy)
    _approve(store, info.batch_id)
    shipping.sync(vault, policy, NOW)
    assert store.stored()[:2] == (1, 3)
    line = shipping.request_store_erasure(vault, policy, "all", NOW)
    assert line and "erased" in line
    (request,) = outbox.erasure_requests(vault)
    assert request.receipt is not None and request.last_error is None
    assert store.stored()[1] == 0  # the subject's records are gone from the store


def test_status_shows_what_the_store_said(store, enrolled, monkeypatch: pytest.MonkeyPatch, layout: Layout) -> None:
    vault, policy = enrolled
    info = batches.seal_pending(vault, policy, NOW)
    batches.release(vault, info.batch_id, NOW)
    batches.record_error(vault, info.batch_id, "chain_broken: batch 2 does not extend batch 1", NOW)
    result = CliRunner().invoke(cli, ["status", "--json"])
    release = json.loads(result.output)["release"]
    assert release["batches"] == {"released": 1}
    assert release["problems"] == [
        {"batch_id": info.batch_id, "state": "released", "error": "chain_broken: batch 2 does not extend batch 1"}
    ]
    text = CliRunner().invoke(cli, ["status"]).output
    assert "chain_broken" in text and "1 released" in text


def test_upload_retried_after_a_crash_is_acknowledged_once(store, enrolled) -> None:
    """The store stored the batch but the agent died before recording it: the retry gets the same receipt."""
    vault, policy = enrolled
    info = _submitted(vault, policy)
    _approve(store, info.batch_id)
    # Approve locally, then do exactly what _ship does up to the upload, and "crash" there.
    client = shipping.client_for(vault, policy)
    status = client.batch_status(info.batch_id)
    assert batches.mark_decision(vault, info.batch_id, "approved", f"{status.approvals}", NOW)
    store_key = b64decode(vault.meta["store_public_key"])
    from protocol import LedgerCheckpoint

    sealed, checkpoint = batches.prepare_upload(vault, info.batch_id, store_key, NOW)
    assert batches.prepare_upload(vault, info.batch_id, store_key, NOW + timedelta(minutes=1)) == (sealed, checkpoint)
    client.submit_checkpoint(LedgerCheckpoint.model_validate(checkpoint._asdict()))
    first = client.upload(sealed)
    client.close()
    report = shipping.sync(vault, policy, NOW + timedelta(minutes=5))  # after the "restart"
    assert report.shipped == [info.batch_id] and not report.errors, report.errors
    assert outbox.get_batch(vault, info.batch_id).receipt["leaf_index"] == first.leaf_index
    assert store.stored()[:2] == (1, 3)


def test_batch_erased_after_submission_is_withdrawn_and_later_batches_still_ship(store, enrolled) -> None:
    vault, policy = enrolled
    first = _submitted(vault, policy)
    from vault.shredding import erase_categories

    erase_categories(vault, [Category.MOUSE], now=NOW, revoked_too=False)
    assert outbox.get_batch(vault, first.batch_id).state == "withdrawing"
    shipping.sync(vault, policy, NOW)
    assert outbox.get_batch(vault, first.batch_id).state == "erased"
    with store.steward_client(store.stewards.signers[0]) as client:
        assert client.queue() == []  # the store closed it
    r = receipt_for(vault.consent(policy), Category.KEYBOARD)
    vault.write_windows([keyboard_window(T + 600, r)])
    second = _submitted(vault, policy)
    _approve(store, second.batch_id)
    report = shipping.sync(vault, policy, NOW)
    assert report.shipped == [second.batch_id] and not report.errors, report.errors


def test_a_version_1_manifest_already_in_the_vault_ships_after_the_upgrade_and_the_next_batch_chains_to_it(
    store, enrolled
) -> None:
    """A batch an older agent numbered (its manifest of version 1 stored in the vault, not yet sent) is
    submitted, approved and shipped as it is; the next manifest is of version 2 and names its hash."""
    vault, policy = enrolled
    info = batches.seal_pending(vault, policy, NOW)
    assert info is not None
    batches.release(vault, info.batch_id, NOW)
    new = batches.prepare_submission(vault, info.batch_id, NOW)
    old = as_version_1(new, vault.device_key.kid)  # what the older agent stored before its crash or upgrade
    with vault.transaction():
        vault.db.execute(
            "UPDATE batches SET manifest = ?, manifest_sha256 = ? WHERE batch_id = ?",
            (old.model_dump_json(), manifest_digest(old), info.batch_id),
        )
    assert batches.manifest_of(vault, info.batch_id) == old
    assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
    _approve(store, info.batch_id)
    report = shipping.sync(vault, policy, NOW)
    assert report.shipped == [info.batch_id] and not report.errors, report.errors
    with store.backend.transaction() as tx:
        assert tx.get_batch(info.batch_id).manifest_sha256 == manifest_digest(old)  # type: ignore[union-attr]
    r = receipt_for(vault.consent(policy), Category.KEYBOARD)
    vault.write_windows([keyboard_window(T + 600, r)])
    second = _submitted(vault, policy)
    following = batches.manifest_of(vault, second.batch_id)
    assert following.v == 2 and following.seq == 2 and following.prev_batch_hash == manifest_digest(old)
    _approve(store, second.batch_id)
    report = shipping.sync(vault, policy, NOW)
    assert report.shipped == [second.batch_id] and not report.errors, report.errors


def test_enrollment_must_name_the_key_id_of_its_own_key(store) -> None:
    import httpx

    from protocol.signing import SigningKey
    from protocol.store_api import enroll_message
    from store.auth import token_hash

    device, other = SigningKey.generate(), SigningKey.generate()
    token = issue_token(store.backend, store.settings, int(NOW.timestamp()))
    public = b64encode(device.public_bytes)
    proof = device.sign(enroll_message(token_hash(token), other.kid, public))
    body = {"token": token, "device_kid": other.kid, "public_key": public, "proof": b64encode(proof)}
    response = httpx.post(f"{store.url}/v1/enroll", json=body)
    assert response.status_code == 422 and "key id" in response.json()["error"]["message"]


def test_a_withdrawn_batch_takes_no_further_decision_or_upload(store, enrolled) -> None:
    vault, policy = enrolled
    info = _submitted(vault, policy)
    with shipping.client_for(vault, policy) as client:
        client.withdraw(info.batch_id)
        assert client.withdraw(info.batch_id).state == "withdrawn"  # idempotent
    from protocol.store_errors import Conflict

    with pytest.raises(Conflict) as refused:
        _approve(store, info.batch_id)  # the review already says why
    assert refused.value.code == "batch_withdrawn"
    steward = store.stewards.signers[0]
    digest = manifest_digest(batches.manifest_of(vault, info.batch_id))
    with store.steward_client(steward) as client, pytest.raises(Conflict) as decided:
        client.decide(sign_approval(steward, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
    assert decided.value.code == "batch_withdrawn"  # never approved again
    with store.steward_client(store.stewards.signers[0]) as client:
        assert client.queue() == []


def test_an_upload_made_before_a_later_checkpoint_was_witnessed_is_made_again_and_ships(store, enrolled) -> None:
    """Found by the fault soak (benchmarks/bench_fleet_faults.py): an upload is prepared once, naming the
    ledger checkpoint of that moment, and stored so a retry sends the same bytes. If its answer is lost
    and the store then witnesses a later checkpoint (another batch's upload, or the agent's own ledger
    witness), the store refuses that upload's checkpoint as ``checkpoint_regressed`` for ever, and the
    batches after it wait behind it (``chain_out_of_order``). The store stored nothing, so the agent makes a fresh
    upload with a current checkpoint and ships."""
    vault, policy = enrolled
    info = _submitted(vault, policy)
    _approve(store, info.batch_id)
    batches.mark_decision(vault, info.batch_id, "approved", "1 approval(s)", NOW)  # what a sync's poll records
    _, store_key, _ = shipping.enrolled_store(vault, policy)
    batches.prepare_upload(vault, info.batch_id, store_key, NOW)  # made, then its answer lost
    grant(vault, Category.FILES, NOW, policy)  # the ledger moves on ...
    with shipping.client_for(vault, policy) as client:  # ... and the store witnesses the later checkpoint
        shipping.witness_checkpoint(vault, client, vault.ledger.checkpoint(vault.device_key, NOW), NOW)
    first = shipping.sync(vault, policy, NOW)
    assert first.shipped == [] and "checkpoint_regressed" in first.errors[0]
    assert store.stored()[0] == 0
    second = shipping.sync(vault, policy, NOW)
    assert second.shipped == [info.batch_id], second.errors
    assert store.stored()[:2] == (1, 3)


def test_an_upload_stored_whose_answer_was_lost_ships_with_its_receipt_after_a_later_checkpoint(
    store, enrolled
) -> None:
    """Found by tests/store/test_fleet_faults.py: the store stored the upload but its answer was lost, then
    witnessed a later checkpoint. The retry's own checkpoint is now older than the store's, yet the batch is
    stored: the agent must get the stored receipt back, not make a new upload (which the store refuses for
    ever as ``batch_id_reused``, leaving the batch approved and never shipped)."""
    vault, policy = enrolled
    info = _submitted(vault, policy)
    _approve(store, info.batch_id)
    batches.mark_decision(vault, info.batch_id, "approved", "1 approval(s)", NOW)  # what a sync's poll records
    _, store_key, _ = shipping.enrolled_store(vault, policy)
    sealed, checkpoint = batches.prepare_upload(vault, info.batch_id, store_key, NOW)
    with shipping.client_for(vault, policy) as client:
        shipping.witness_checkpoint(vault, client, checkpoint, NOW)
        client.upload(sealed)  # stored; its answer never reaches the vault
    grant(vault, Category.FILES, NOW, policy)  # the ledger moves on ...
    with shipping.client_for(vault, policy) as client:  # ... and the store witnesses the later checkpoint
        shipping.witness_checkpoint(vault, client, vault.ledger.checkpoint(vault.device_key, NOW), NOW)
    report = shipping.sync(vault, policy, NOW)
    assert report.shipped == [info.batch_id] and not report.errors, report.errors
    assert store.stored()[0] == 1  # stored once
