"""Review sets: a steward approves the batches shown in one act, by one signature over a Merkle root of
their manifest hashes; each batch's approval is its inclusion proof. Real store, both backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devkit import store_kit
from devkit.store_kit import Agent, Harness, Stewards, running_store
from protocol import SigningKey, manifest_digest, sign_approval
from protocol.approval import tally
from protocol.review_set import SetMember, inclusions, sign_set_approval
from protocol.store_errors import StoreError
from store import review_set_storage as storage
from store.audit import verify_log
from store.review_sets import recomputed_members

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends


def _submit(store: Harness, agents: list[Agent], per_agent: int) -> list[str]:
    ids = []
    for agent in agents:
        for _ in range(per_agent):
            manifest, _ = agent.next_batch()
            with store.client(agent) as client:
                client.submit_manifest(manifest)
            ids.append(manifest.batch_id)
    return ids


def _fleet(store: Harness, devices: int = 3, per_agent: int = 2) -> tuple[list[Agent], list[str]]:
    agents = [Agent() for _ in range(devices)]
    for agent in agents:
        store.enroll(agent)
    return agents, _submit(store, agents, per_agent)


def _open_set(store: Harness, signer: SigningKey):  # -> ReviewSetView
    with store.steward_client(signer) as client:
        (group,) = client.review_set_groups()
        return client.create_review_set(group.key)


def _sign(signer: SigningKey, view) -> object:  # ReviewSetView -> SetApproval
    return sign_set_approval(signer, view.set_id, recomputed_members(view), created=int(time.time()))


def _states(store: Harness, signer: SigningKey, ids: list[str]) -> dict[str, tuple[str, int]]:
    with store.steward_client(signer) as client:
        return {i: (s.status.state, s.status.approvals) for i in ids for s in [client.review(i)]}


def test_one_set_approval_per_steward_approves_every_batch_shown_with_m_of_n_per_batch(
    backend_kind: str, tmp_path: Path
) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(3, 2)) as store:
        agents, ids = _fleet(store)
        first, second = store.stewards.signers[:2]
        view = _open_set(store, first)
        assert sorted(e.batch_id for e in view.entries) == sorted(ids)
        with store.steward_client(first) as client:
            outcome = client.approve_review_set(_sign(first, view))
        assert (outcome.counted, outcome.approved, outcome.skipped) == (len(ids), 0, {})
        assert set(_states(store, first, ids).values()) == {("review", 1)}, "one steward is not a quorum"
        with store.steward_client(second) as client:
            again = client.review_set(view.set_id)
            outcome = client.approve_review_set(_sign(second, again))
        assert (outcome.counted, outcome.approved) == (len(ids), len(ids))
        assert set(_states(store, first, ids).values()) == {("approved", 2)}
        # An approval by inclusion is as good as a signed one for shipping: the store takes the batch.
        agent = agents[0]
        manifest, payload = agent.next_batch()  # a fresh one to seal: the fleet's payloads were not kept
        with store.client(agent) as client:
            client.submit_manifest(manifest)
        view2 = _open_set(store, first)
        for signer in (first, second):
            with store.steward_client(signer) as client:
                client.approve_review_set(_sign(signer, client.review_set(view2.set_id)))
        with store.client(agent) as client:
            for batch_id in [i for i in ids[:2]]:
                client.withdraw(batch_id)  # earlier batches of this device close first (chain order)
            receipt = client.upload(agent.seal(manifest, payload, store.keys.seal.public_bytes))
        assert receipt.entry.body["batch_id"] == manifest.batch_id
        # The export names the stewards whose set approvals the batch rests on.
        from protocol import b64encode
        from store.export import export_parquet

        export_parquet(store.backend, store.keys, tmp_path / "export", now=int(time.time()))
        exported = json.loads((tmp_path / "export" / "manifest.json").read_text())
        (batch,) = exported["batches"].values() if isinstance(exported["batches"], dict) else exported["batches"]
        assert sorted(a["steward_key"] for a in batch["approvals"]) == sorted(
            b64encode(s.public_bytes) for s in (first, second)
        )


def test_a_tampered_set_approves_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        _, ids = _fleet(store)
        signer = store.stewards.signers[0]
        view = _open_set(store, signer)
        approval = _sign(signer, view)
        with store.backend.transaction() as tx:  # the store's copy of the set changes after it was shown
            storage._q(
                tx,
                "UPDATE review_set_members SET manifest_sha256 = ? WHERE set_id = ? AND leaf_index = 1",
                ("ee" * 32, view.set_id),
            )
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.approve_review_set(approval)
        assert refused.value.code == "set_root_mismatch" and "nothing was approved" in refused.value.message
        assert set(_states(store, signer, ids).values()) == {("review", 0)}


def test_a_batch_added_after_showing_is_never_approved_by_the_set(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        agents, ids = _fleet(store)
        signer = store.stewards.signers[0]
        view = _open_set(store, signer)
        approval = _sign(signer, view)
        (late,) = _submit(store, agents[:1], 1)  # submitted after the set was shown
        late_digest = manifest_digest(_review(store, signer, late).manifest)
        with store.backend.transaction() as tx:  # ... and slipped into the set's members
            storage._q(
                tx,
                "INSERT INTO review_set_members (set_id, leaf_index, batch_id, manifest_sha256) VALUES (?, ?, ?, ?)",
                (view.set_id, len(ids), late, late_digest),
            )
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.approve_review_set(approval)
        assert refused.value.code == "set_root_mismatch"
        with store.backend.transaction() as tx:
            storage._q(tx, "DELETE FROM review_set_members WHERE batch_id = ?", (late,))
        with store.steward_client(signer) as client:
            outcome = client.approve_review_set(approval)
        assert outcome.approved == len(ids)
        assert _states(store, signer, [late]) == {late: ("review", 0)}


def _review(store: Harness, signer: SigningKey, batch_id: str):
    with store.steward_client(signer) as client:
        return client.review(batch_id)


def test_a_proof_for_another_root_counts_for_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        agents, ids = _fleet(store, devices=2, per_agent=1)
        signer = store.stewards.signers[0]
        view_a = _open_set(store, signer)
        members_a = recomputed_members(view_a)
        approval_a = _sign(signer, view_a)
        # A second set with one other batch: the steward's signature over set A proves nothing about it.
        other = [SetMember(batch_id="0" * 32, manifest_sha256="11" * 32)]
        proof = inclusions(approval_a, members_a)[0]
        forged = proof.model_copy(update={"batch_id": other[0].batch_id, "manifest_sha256": other[0].manifest_sha256})
        device = agents[0].device.public_bytes
        for decision in (forged, proof.model_copy(update={"leaf_index": 1})):
            t = tally([decision], store.stewards.config(), batch_id=decision.batch_id,
                      manifest_sha256=decision.manifest_sha256, device_public_key=device)  # fmt: skip
            assert t.status == "pending" and [i.reason for i in t.ignored] == ["bad_signature"]
        # Signed for set A's id over another root: the store rebuilds set A and refuses.
        wrong_root = sign_set_approval(signer, view_a.set_id, other, created=int(time.time()))
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.approve_review_set(wrong_root)
        assert refused.value.code == "set_root_mismatch"
        assert set(_states(store, signer, ids).values()) == {("review", 0)}


def test_a_set_approval_replayed_for_another_set_is_refused(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        _, ids = _fleet(store, devices=2, per_agent=1)
        signer = store.stewards.signers[0]
        view_a = _open_set(store, signer)
        view_b = _open_set(store, signer)  # the same batches, frozen again: another set id
        approval_a = _sign(signer, view_a)
        with store.steward_client(signer) as client:
            with pytest.raises(StoreError) as refused:
                client._request(
                    "POST", f"/v1/steward/review-sets/{view_b.set_id}/approvals", body=approval_a, retry=False
                )
            assert refused.value.code == "set_mismatch"
            relabelled = approval_a.model_copy(update={"set_id": view_b.set_id})
            with pytest.raises(StoreError) as refused:
                client.approve_review_set(relabelled)
            assert refused.value.code == "approval_signature_invalid"
        assert set(_states(store, signer, ids).values()) == {("review", 0)}


def test_one_steward_signing_twice_counts_once(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(3, 2)) as store:
        _, ids = _fleet(store, devices=2, per_agent=1)
        signer = store.stewards.signers[0]
        single = _review(store, signer, ids[0]).manifest
        with store.steward_client(signer) as client:
            client.decide(sign_approval(signer, ids[0], manifest_digest(single), "approve", created=int(time.time())))
        view = _open_set(store, signer)
        with store.steward_client(signer) as client:
            outcome = client.approve_review_set(_sign(signer, view))
            assert outcome.counted == len(ids) - 1
            assert outcome.skipped == {ids[0]: "you already decided on this batch"}
            with pytest.raises(StoreError) as refused:
                client.approve_review_set(_sign(signer, view))
            assert refused.value.code == "already_decided"
            again = _open_set(store, signer)  # the same batches in a new set: still one steward
            outcome = client.approve_review_set(_sign(signer, again))
        assert outcome.counted == 0 and set(outcome.skipped) == set(ids)
        assert set(_states(store, signer, ids).values()) == {("review", 1)}


def test_set_approvals_keep_one_verifiable_audit_log(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        _, ids = _fleet(store, devices=3, per_agent=3)
        signer = store.stewards.signers[0]
        with store.steward_client(signer) as client:
            before = client.tree_head()
            view = _open_set(store, signer)
            client.approve_review_set(_sign(signer, view))
            check = verify_log(client, store.keys.log.public_bytes, since=before, full=True)
            logged = [e for e in client.entries(before.size, check.head.size) if e.kind == "approval"]
        assert check.entries_checked == check.head.size == before.size + len(ids)
        assert sorted(e.body["batch_id"] for e in logged) == sorted(ids)
        assert {e.body["review_set"] for e in logged} == {view.set_id}
