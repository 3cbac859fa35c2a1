"""Rejecting a review set in one act: one steward signature over the root of the manifest hashes shown,
the reason in the signed body; each open batch's rejection is its inclusion proof. Real store, both
backends; the audit log names each reason by a salted digest, never its text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from devkit import store_kit
from devkit.store_kit import Agent, Harness, Stewards, running_store
from protocol import SigningKey, manifest_digest, sign_approval
from protocol.approval import reason_digest, tally
from protocol.fields import b64encode
from protocol.review_set import (
    SetRejection,
    rejection_inclusions,
    sign_set_approval,
    sign_set_rejection,
)
from protocol.store_errors import StoreError
from store import review_set_storage as storage
from store.audit import verify_log
from store.review_sets import recomputed_members

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends

REASON = "Window titles of Jane Doe's banking app leaked into the app category"


def _fleet(store: Harness, devices: int = 3, per_agent: int = 2) -> tuple[list[Agent], list[str]]:
    agents = [Agent() for _ in range(devices)]
    ids = []
    for agent in agents:
        store.enroll(agent)
        ids.extend(_submit(store, agent, per_agent))
    return agents, ids


def _submit(store: Harness, agent: Agent, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        manifest, _ = agent.next_batch()
        with store.client(agent) as client:
            client.submit_manifest(manifest)
        ids.append(manifest.batch_id)
    return ids


def _open_set(store: Harness, signer: SigningKey):  # -> ReviewSetView
    with store.steward_client(signer) as client:
        (group,) = client.review_set_groups()
        return client.create_review_set(group.key)


def _reject(signer: SigningKey, view, reason: str = REASON) -> SetRejection:
    return sign_set_rejection(signer, view.set_id, recomputed_members(view), reason, created=int(time.time()))


def _states(store: Harness, signer: SigningKey, ids: list[str]) -> dict[str, str]:
    with store.steward_client(signer) as client:
        return {i: client.review(i).status.state for i in ids}


def _log_size(store: Harness, signer: SigningKey) -> int:
    with store.steward_client(signer) as client:
        return client.tree_head().size


def _stored_rejections(store: Harness) -> int:
    with store.backend.transaction() as tx:
        return int(storage._q(tx, "SELECT COUNT(*) FROM review_set_rejections").fetchone()[0])


def test_one_set_rejection_stops_every_batch_shown_and_each_agent_learns_why(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(3, 2)) as store:
        agents, ids = _fleet(store)
        signer = store.stewards.signers[0]
        before = _log_size(store, signer)
        view = _open_set(store, signer)
        rejection = _reject(signer, view)
        with store.steward_client(signer) as client:
            outcome = client.reject_review_set(rejection)
            shown = client.review_set(view.set_id)
        assert (outcome.rejected, outcome.skipped) == (len(ids), {})
        assert set(_states(store, signer, ids).values()) == {"rejected"}, "one steward's rejection stops a batch"
        assert [r.reason for r in shown.rejections] == [REASON]
        # Each employee's agent learns it the way it learns a single rejection: its batch's status.
        for agent in agents:
            with store.client(agent) as client:
                for batch_id in ids:
                    try:
                        status = client.batch_status(batch_id)
                    except StoreError:
                        continue  # another device's batch
                    assert status.state == "rejected" and status.rejection_reasons == (REASON,)
        # The log: one rejection entry per batch naming the set, the root and the reason's salted digest.
        with store.steward_client(signer) as client:
            check = verify_log(client, store.keys.log.public_bytes, full=True)
            logged = client.entries(before, check.head.size)
        assert [e.kind for e in logged] == ["rejection"] * len(ids)
        assert sorted(e.body["batch_id"] for e in logged) == sorted(ids)
        digest = reason_digest(REASON, rejection.signature)
        assert {(e.body["review_set"], e.body["set_root"], e.body["reason_sha256"]) for e in logged} == {
            (view.set_id, rejection.root, digest)
        }
        everything = json.dumps([e.model_dump(mode="json") for e in logged])
        assert "Jane" not in everything and "banking" not in everything
        # A device reads the rejection entries of its own batches, and only those.
        with store.client(agents[0]) as client:
            own = [e for e in client.entries(before, check.head.size) if e.kind == "rejection"]
        assert len(own) == 2 and {e.body["batch_id"] for e in own} <= set(ids)


def test_a_single_rejection_logs_the_reason_by_its_digest_too(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        agents, (batch_id,) = _fleet(store, devices=1, per_agent=1)
        signer = store.stewards.signers[0]
        with store.steward_client(signer) as client:
            digest = manifest_digest(client.review(batch_id).manifest)
            decision = sign_approval(signer, batch_id, digest, "reject", created=int(time.time()), reason=REASON)
            client.decide(decision)
            head = client.tree_head()
            (entry,) = [e for e in client.entries(0, head.size) if e.kind == "rejection"]
        assert entry.body["reason_sha256"] == reason_digest(REASON, decision.signature)
        assert "Jane" not in json.dumps(entry.body)
        with store.client(agents[0]) as client:
            assert client.batch_status(batch_id).rejection_reasons == (REASON,)


def test_a_tampered_set_rejects_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        _, ids = _fleet(store)
        signer = store.stewards.signers[0]
        view = _open_set(store, signer)
        rejection = _reject(signer, view)
        before = _log_size(store, signer)
        with store.backend.transaction() as tx:  # the store's copy of the set changes after it was shown
            storage._q(
                tx,
                "UPDATE review_set_members SET manifest_sha256 = ? WHERE set_id = ? AND leaf_index = 1",
                ("ee" * 32, view.set_id),
            )
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.reject_review_set(rejection)
        assert refused.value.code == "set_root_mismatch" and "nothing was rejected" in refused.value.message
        assert set(_states(store, signer, ids).values()) == {"review"}
        assert _log_size(store, signer) == before and _stored_rejections(store) == 0
        # A reason changed after signing does not verify: the employee is told what the steward signed.
        reworded = rejection.model_copy(update={"reason": "some other reason"})
        with store.backend.transaction() as tx:
            storage._q(tx, "UPDATE review_set_members SET manifest_sha256 = ? WHERE set_id = ? AND leaf_index = 1",
                       (view.entries[1].manifest_sha256, view.set_id))  # fmt: skip
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.reject_review_set(reworded)
        assert refused.value.code == "rejection_signature_invalid"
        assert set(_states(store, signer, ids).values()) == {"review"}


class _NoReason(BaseModel):  # what a tool that forgot the reason would send
    v: int
    set_id: str
    root: str
    size: int
    steward_key: str
    signature: str
    created: int


def test_a_set_rejection_without_a_reason_is_refused_and_changes_nothing(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        _, ids = _fleet(store, devices=2, per_agent=1)
        signer = store.stewards.signers[0]
        view = _open_set(store, signer)
        members = recomputed_members(view)
        with pytest.raises(ValueError, match="needs a reason"):
            sign_set_rejection(signer, view.set_id, members, "   ", created=int(time.time()))
        before = _log_size(store, signer)
        signed = _reject(signer, view)
        blank = SetRejection.model_construct(**{**signed.model_dump(), "reason": "  "})
        missing = _NoReason(**signed.model_dump(exclude={"reason"}))
        path = f"/v1/steward/review-sets/{view.set_id}/rejections"
        with store.steward_client(signer) as client:
            for body in (blank, missing):
                with pytest.raises(StoreError) as refused:
                    client._request("POST", path, body=body, retry=False)
                assert refused.value.status == 422, refused.value
        assert set(_states(store, signer, ids).values()) == {"review"}
        assert _log_size(store, signer) == before and _stored_rejections(store) == 0


def test_a_batch_added_after_showing_is_never_rejected_by_the_set(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        agents, ids = _fleet(store)
        signer = store.stewards.signers[0]
        view = _open_set(store, signer)
        rejection = _reject(signer, view)
        (late,) = _submit(store, agents[0], 1)  # submitted after the set was shown
        with store.steward_client(signer) as client:
            late_digest = manifest_digest(client.review(late).manifest)
        with store.backend.transaction() as tx:  # ... and slipped into the set's members
            storage._q(
                tx,
                "INSERT INTO review_set_members (set_id, leaf_index, batch_id, manifest_sha256) VALUES (?, ?, ?, ?)",
                (view.set_id, len(ids), late, late_digest),
            )
        with store.steward_client(signer) as client, pytest.raises(StoreError) as refused:
            client.reject_review_set(rejection)
        assert refused.value.code == "set_root_mismatch"
        assert set(_states(store, signer, [*ids, late]).values()) == {"review"}
        with store.backend.transaction() as tx:
            storage._q(tx, "DELETE FROM review_set_members WHERE batch_id = ?", (late,))
        with store.steward_client(signer) as client:
            assert client.reject_review_set(rejection).rejected == len(ids)
        assert _states(store, signer, [late]) == {late: "review"}
        # A rejection proof moved onto the late batch counts for nothing.
        proof = rejection_inclusions(rejection, recomputed_members(view))[0]
        forged = proof.model_copy(update={"batch_id": late, "manifest_sha256": late_digest})
        t = tally([forged], store.stewards.config(), batch_id=late, manifest_sha256=late_digest,
                  device_public_key=agents[0].device.public_bytes)  # fmt: skip
        assert t.status == "pending" and [i.reason for i in t.ignored] == ["bad_signature"]


def test_a_replayed_set_rejection_is_refused(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(2, 1)) as store:
        agents, ids = _fleet(store, devices=2, per_agent=1)
        signer = store.stewards.signers[0]
        view_a = _open_set(store, signer)
        view_b = _open_set(store, signer)  # the same batches, frozen again: another set id
        rejection = _reject(signer, view_a)
        with store.steward_client(signer) as client:
            with pytest.raises(StoreError) as refused:  # set A's rejection sent to set B
                client._request(
                    "POST", f"/v1/steward/review-sets/{view_b.set_id}/rejections", body=rejection, retry=False
                )
            assert refused.value.code == "set_mismatch"
            with pytest.raises(StoreError) as refused:  # ... or relabelled as set B's
                client.reject_review_set(rejection.model_copy(update={"set_id": view_b.set_id}))
            assert refused.value.code == "rejection_signature_invalid"
            # An approval's signature over the same root is no rejection (another prefix and body).
            approval = sign_set_approval(signer, view_a.set_id, recomputed_members(view_a), created=int(time.time()))
            as_rejection = rejection.model_copy(update={"signature": approval.signature})
            with pytest.raises(StoreError) as refused:
                client.reject_review_set(as_rejection)
            assert refused.value.code == "rejection_signature_invalid"
        assert set(_states(store, signer, ids).values()) == {"review"}
        with store.steward_client(signer) as client:
            assert client.reject_review_set(rejection).rejected == len(ids)
            size = client.tree_head().size
            with pytest.raises(StoreError) as refused:  # the same signed rejection again
                client.reject_review_set(rejection)
            assert refused.value.code == "already_decided" and "nothing changed" in refused.value.message
            assert client.tree_head().size == size
        assert _stored_rejections(store) == 1


def test_a_steward_who_approved_a_set_cannot_reject_it_but_another_steward_can(
    backend_kind: str, tmp_path: Path
) -> None:
    with running_store(backend_kind, tmp_path, Stewards.make(3, 2)) as store:
        _, ids = _fleet(store, devices=2, per_agent=2)
        first, second = store.stewards.signers[:2]
        with store.steward_client(second) as client:  # the second steward already decided one batch alone
            digest = manifest_digest(client.review(ids[0]).manifest)
            client.decide(sign_approval(second, ids[0], digest, "approve", created=int(time.time())))
        view = _open_set(store, first)
        with store.steward_client(first) as client:
            approval = sign_set_approval(first, view.set_id, recomputed_members(view), created=int(time.time()))
            assert client.approve_review_set(approval).counted == len(ids)
            size = client.tree_head().size
            with pytest.raises(StoreError) as refused:
                client.reject_review_set(_reject(first, view))
            assert refused.value.code == "already_decided" and "you approved this review set" in refused.value.message
            assert client.tree_head().size == size
        assert _states(store, first, ids) == {ids[0]: "approved", **{i: "review" for i in ids[1:]}}
        assert _stored_rejections(store) == 0
        with store.steward_client(second) as client:
            outcome = client.reject_review_set(_reject(second, client.review_set(view.set_id)))
        # The second steward's own earlier approval of one batch stands (one decision per steward and batch).
        assert outcome.rejected == len(ids) - 1 and outcome.skipped == {ids[0]: "you already decided on this batch"}
        assert _states(store, first, ids) == {ids[0]: "approved", **{i: "rejected" for i in ids[1:]}}
        assert b64encode(second.public_bytes) in {r.steward_key for r in _view(store, first, view.set_id).rejections}
        with store.steward_client(second) as client, pytest.raises(StoreError) as refused:  # and the other way
            again = client.review_set(view.set_id)
            client.approve_review_set(sign_set_approval(second, view.set_id, recomputed_members(again), created=1))
        assert refused.value.code == "already_decided" and "you rejected this review set" in refused.value.message
        assert _view(store, first, view.set_id).approvals[0].steward_key == b64encode(first.public_bytes)
        assert len(_view(store, first, view.set_id).approvals) == 1


def _view(store: Harness, signer: SigningKey, set_id: str):
    with store.steward_client(signer) as client:
        return client.review_set(set_id)
