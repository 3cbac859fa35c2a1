"""The store over real HTTP on both backends: what it accepts, and every way it refuses (storing nothing)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit import store_kit
from devkit.store_kit import T0, Agent, Harness, SigningKey, running_store
from protocol import (
    LedgerCheckpointRef,
    b64decode,
    b64encode,
    build_header,
    manifest_digest,
    seal_batch,
    sign_approval,
    sign_checkpoint,
    verify_receipt,
)
from protocol.request_signing import sign_request
from protocol.store_errors import (
    Conflict,
    Forbidden,
    PayloadTooLarge,
    StoreError,
    Unauthenticated,
    Unprocessable,
)

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends


@pytest.fixture
def store(backend_kind: str, tmp_path: Path) -> Iterator[Harness]:
    with running_store(backend_kind, tmp_path, max_body_bytes=256 * 1024) as harness:
        yield harness


@pytest.fixture
def agent(store: Harness) -> Agent:
    a = Agent()
    store.enroll(a)
    return a


def _refused(store: Harness, call, error: type[StoreError], code: str) -> None:
    before = store.stored()
    with pytest.raises(error) as info:
        call()
    assert info.value.code == code, info.value
    assert store.stored() == before, "a refused request must store nothing"


def test_approved_batch_is_stored_once_and_its_receipt_verifies(store: Harness, agent: Agent) -> None:
    manifest, sealed = store.shippable(agent, 30)
    with store.client(agent) as client:
        assert client.batch_status(manifest.batch_id).state == "approved"
        receipt = client.upload(sealed)
        verify_receipt(receipt, store.keys.log.public_bytes)
        assert receipt.entry.kind == "batch-stored" and receipt.entry.body["records"] == 30
        assert client.upload(sealed) == receipt  # a retry gets the same receipt
        resealed = seal_batch(sealed.header, b"", store.keys.seal.public_bytes, agent.device)
        assert client.upload(resealed) == receipt  # same header, fresh ciphertext: still the same batch
        assert client.batch_status(manifest.batch_id).state == "stored"
    assert store.stored()[:2] == (1, 30)


def test_unapproved_batch_is_refused(store: Harness, agent: Agent) -> None:
    manifest, payload = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
        sealed = agent.seal(manifest, payload, store.keys.seal.public_bytes)
        _refused(store, lambda: client.upload(sealed), Conflict, "not_approved")


def test_under_approved_batch_is_refused(store: Harness, agent: Agent) -> None:
    manifest, payload = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
        store.approve(manifest, count=1)  # 1 of the 2 required
        assert client.batch_status(manifest.batch_id).approvals == 1
        sealed = agent.seal(manifest, payload, store.keys.seal.public_bytes)
        _refused(store, lambda: client.upload(sealed), Conflict, "not_approved")


def test_rejected_batch_is_refused_even_with_enough_approvals(store: Harness, agent: Agent) -> None:
    manifest, payload = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
        with store.steward_client(store.stewards.signers[2]) as steward:
            no = sign_approval(
                store.stewards.signers[2],
                manifest.batch_id,
                manifest_digest(manifest),
                "reject",
                created=T0,
                reason="too much keyboard detail",
            )
            assert steward.decide(no).state == "rejected"
        sealed = agent.seal(manifest, payload, store.keys.seal.public_bytes)
        _refused(store, lambda: client.upload(sealed), Conflict, "batch_rejected")
        assert client.batch_status(manifest.batch_id).rejection_reasons == ("too much keyboard detail",)


def _flip(b64: str, position: int) -> str:
    raw = bytearray(b64decode(b64))
    raw[position % len(raw)] ^= 0x01
    return b64encode(bytes(raw))


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("header_created", "batch_signature_invalid"),
        ("header_seq", "batch_signature_invalid"),
        ("sealed_first_ciphertext_byte", "batch_signature_invalid"),
        ("sealed_last_byte", "batch_signature_invalid"),
        ("signature", "batch_signature_invalid"),
        ("header_resigned", "header_mismatch"),
        ("payload_resealed", "payload_mismatch"),
    ],
)
def test_tampered_batch_is_refused(store: Harness, agent: Agent, tamper: str, code: str) -> None:
    _manifest, sealed = store.shippable(agent)
    header = sealed.header
    if tamper == "header_created":
        bad = sealed.model_copy(update={"header": header.model_copy(update={"created": header.created + 1})})
    elif tamper == "header_seq":
        bad = sealed.model_copy(update={"header": header.model_copy(update={"seq": header.seq + 1})})
    elif tamper == "sealed_first_ciphertext_byte":
        bad = sealed.model_copy(update={"sealed": _flip(sealed.sealed, 33)})
    elif tamper == "sealed_last_byte":
        bad = sealed.model_copy(update={"sealed": _flip(sealed.sealed, -1)})
    elif tamper == "signature":
        bad = sealed.model_copy(update={"signature": _flip(sealed.signature, 5)})
    elif tamper == "header_resigned":
        # The device itself re-seals with a header that no longer matches the approved manifest.
        edited = header.model_copy(update={"subject": "subj-not-the-approved-one"})
        bad = seal_batch(edited, b"{}", store.keys.seal.public_bytes, agent.device)
    else:
        # A different payload under the approved header: decrypts, but is not what the stewards approved.
        bad = seal_batch(header, b'{"v":1}', store.keys.seal.public_bytes, agent.device)
    with store.client(agent) as client:
        _refused(store, lambda: client.upload(bad), Unprocessable, code)
        assert client.upload(sealed).entry.kind == "batch-stored"  # the genuine batch still goes through


def test_tampered_approval_is_refused_and_does_not_count(store: Harness, agent: Agent) -> None:
    manifest, _ = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
    signer = store.stewards.signers[0]
    good = sign_approval(signer, manifest.batch_id, manifest_digest(manifest), "approve", created=T0)
    with store.steward_client(signer) as steward:
        with pytest.raises(Unprocessable) as info:
            steward.decide(good.model_copy(update={"signature": _flip(good.signature, 3)}))
        assert info.value.code == "approval_signature_invalid"
        other = sign_approval(signer, manifest.batch_id, "ab" * 32, "approve", created=T0)
        with pytest.raises(Unprocessable):
            steward.decide(other)
        assert steward.review(manifest.batch_id).status.approvals == 0


def test_approval_by_the_devices_own_key_does_not_count(backend_kind: str, tmp_path: Path) -> None:
    agent = Agent()
    from devkit.store_kit import Stewards

    stewards = Stewards.make(2, 2)
    stewards.signers.append(agent.device)  # misconfiguration: the device key listed as a steward
    stewards.required = 2
    with running_store(backend_kind, tmp_path, stewards) as store:
        store.enroll(agent)
        manifest, payload = agent.next_batch()
        with store.client(agent) as client:
            client.submit_manifest(manifest)
            own = sign_approval(agent.device, manifest.batch_id, manifest_digest(manifest), "approve", created=T0)
            one = store.stewards.approvals(manifest, 1)[0]
            with store.steward_client(agent.device) as as_steward:
                assert as_steward.decide(own).approvals == 0
            with store.steward_client(store.stewards.signers[0]) as steward:
                assert steward.decide(one).state == "review"
            sealed = agent.seal(manifest, payload, store.keys.seal.public_bytes)
            _refused(store, lambda: client.upload(sealed), Conflict, "not_approved")


def test_unknown_steward_key_is_refused(store: Harness, agent: Agent) -> None:
    manifest, _ = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
    stranger = SigningKey.generate()
    approval = sign_approval(stranger, manifest.batch_id, manifest_digest(manifest), "approve", created=T0)
    with store.steward_client(stranger) as c:
        with pytest.raises(Forbidden) as info:
            c.decide(approval)
        assert info.value.code == "not_a_steward"
        with pytest.raises(Forbidden):
            c.queue()


def test_reordered_batches_are_refused_until_the_earlier_one_is_stored(store: Harness, agent: Agent) -> None:
    _, first = store.shippable(agent)
    _, second = store.shippable(agent)
    with store.client(agent) as client:
        _refused(store, lambda: client.upload(second), Conflict, "chain_out_of_order")
        client.upload(first)
        client.upload(second)
    assert store.stored()[0] == 2


def test_manifest_that_does_not_extend_the_chain_is_refused(store: Harness, agent: Agent) -> None:
    first, _ = agent.next_batch()
    agent.next_batch()  # seq 2 never submitted
    third, _ = agent.next_batch()
    forked = Agent(device=agent.device, subject=agent.subject)  # restarts at seq 1 with the genesis hash
    fork, _ = forked.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(first)
        assert client.submit_manifest(first).state == "review"  # a resubmission is idempotent
        with pytest.raises(Conflict) as gap:
            client.submit_manifest(third)
        with pytest.raises(Conflict) as replay:
            client.submit_manifest(fork)
    assert gap.value.code == replay.value.code == "chain_broken"


def test_replayed_request_is_refused(store: Harness, agent: Agent) -> None:
    manifest, _ = agent.next_batch()
    body = manifest.model_dump_json().encode()
    headers = sign_request(agent.device, "device", "POST", "/v1/manifests", body, now=int(time.time()))
    headers["content-type"] = "application/json"
    first = httpx.post(store.url + "/v1/manifests", content=body, headers=headers)
    again = httpx.post(store.url + "/v1/manifests", content=body, headers=headers)
    assert first.status_code == 200
    assert again.status_code == 401 and again.json()["error"]["code"] == "auth_replayed"


def test_stale_or_unsigned_or_badly_signed_request_is_refused(store: Harness, agent: Agent) -> None:
    manifest, _ = agent.next_batch()
    with store.client(agent, clock=lambda: time.time() - 3600) as late:
        _refused(store, lambda: late.submit_manifest(manifest), Unauthenticated, "auth_stale")
    r = httpx.post(
        store.url + "/v1/manifests",
        content=manifest.model_dump_json(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth_missing"
    body = manifest.model_dump_json().encode()
    headers = sign_request(agent.device, "device", "POST", "/v1/manifests", body + b" ", now=int(time.time()))
    r = httpx.post(store.url + "/v1/manifests", content=body, headers={**headers, "content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth_bad_signature"


def test_unenrolled_device_is_refused(store: Harness) -> None:
    stranger = Agent()
    manifest, payload = stranger.next_batch()
    with store.client(stranger) as client:
        _refused(store, lambda: client.submit_manifest(manifest), Unauthenticated, "unknown_key")
        sealed = stranger.seal(manifest, payload, store.keys.seal.public_bytes)
        _refused(store, lambda: client.upload(sealed), Unauthenticated, "unknown_key")


def test_enrollment_token_works_once(store: Harness) -> None:
    from store.auth import issue_token

    token = issue_token(store.backend, store.settings, int(time.time()))
    first, second = Agent(), Agent()
    with store.client(first) as c:
        assert c.enroll(token).store.log_public_key == b64encode(store.keys.log.public_bytes)
    with store.client(second) as c:
        with pytest.raises(Forbidden) as info:
            c.enroll(token)
        assert info.value.code == "token_invalid"
        with pytest.raises(Forbidden):
            c.enroll("not-a-real-token-at-all")


def test_batch_sealed_to_another_store_key_is_refused(store: Harness, agent: Agent) -> None:
    from protocol import StoreSealKey

    manifest, payload = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
        store.approve(manifest)
        wrong = agent.seal(manifest, payload, StoreSealKey.generate().public_bytes)
        _refused(store, lambda: client.upload(wrong), Unprocessable, "batch_undecryptable")


def test_batch_of_another_device_is_refused(store: Harness, agent: Agent) -> None:
    other = Agent()
    store.enroll(other)
    _, sealed = store.shippable(agent)
    with store.client(other) as client:
        _refused(store, lambda: client.upload(sealed), Forbidden, "device_mismatch")


def test_ledger_checkpoints_may_not_go_back_or_fork(store: Harness, agent: Agent) -> None:
    with store.client(agent) as client:
        assert client.submit_checkpoint(sign_checkpoint(agent.device, 7, "aa" * 32, created=T0)).seq == 7
        client.submit_checkpoint(sign_checkpoint(agent.device, 7, "aa" * 32, created=T0))  # same: idempotent
        for seq, head, code in ((6, "aa" * 32, "checkpoint_regressed"), (7, "bb" * 32, "checkpoint_forked")):
            with pytest.raises(Conflict) as info:
                client.submit_checkpoint(sign_checkpoint(agent.device, seq, head, created=T0))
            assert info.value.code == code
        # A batch whose header carries an older ledger head than the witnessed one is refused as well.
        manifest, payload = agent.next_batch()
        client.submit_manifest(manifest)
        store.approve(manifest)
        stale = seal_batch(
            build_header(
                manifest, LedgerCheckpointRef(seq=3, head_hash="cc" * 32), device_kid=agent.device.kid, created=T0
            ),
            payload,
            store.keys.seal.public_bytes,
            agent.device,
        )
        _refused(store, lambda: client.upload(stale), Conflict, "checkpoint_regressed")


def test_oversized_request_gets_413_and_stores_nothing(store: Harness, agent: Agent) -> None:
    _, sealed = store.shippable(agent)
    huge = sealed.model_copy(update={"sealed": b64encode(b"\x01" + bytes(400 * 1024))})
    with store.client(agent) as client:
        _refused(store, lambda: client.upload(huge), PayloadTooLarge, "body_too_large")
    body = b"{" * (300 * 1024)
    headers = sign_request(agent.device, "device", "POST", "/v1/uploads", body, now=int(time.time()))
    r = httpx.post(store.url + "/v1/uploads", content=body, headers={**headers, "content-type": "application/json"})
    assert r.status_code == 413
    unsigned = httpx.post(store.url + "/v1/uploads", content=body, headers={"content-type": "application/json"})
    assert unsigned.status_code == 401  # who is asking comes before how much they send


def test_audit_log_heads_are_consistent_and_cover_approvals_and_uploads(store: Harness, agent: Agent) -> None:
    with store.client(agent) as client:
        head0 = client.tree_head()
        receipts = [client.upload(store.shippable(agent)[1]) for _ in range(3)]
        head = client.tree_head()
        client.check_consistency(head0, head)
        client.check_consistency(receipts[0].tree_head, head)
        kinds = [e.kind for e in client.entries(0, head.size)]
    assert kinds.count("batch-stored") == 3 and kinds.count("approval") == 6


def test_steward_sees_manifest_and_checks_never_records(store: Harness, agent: Agent) -> None:
    manifest, _ = agent.next_batch()
    with store.client(agent) as client:
        client.submit_manifest(manifest)
    with store.steward_client(store.stewards.signers[0]) as steward:
        queue = steward.queue()
        review = steward.review(manifest.batch_id)
    assert [i.batch_id for i in queue] == [manifest.batch_id]
    assert review.manifest == manifest and len(review.privacy_checks) == 5
    assert "records" not in review.model_dump()


def test_unknown_batch_gets_404(store: Harness, agent: Agent) -> None:
    with store.client(agent) as client, pytest.raises(StoreError) as info:
        client.batch_status(uuid.uuid4().hex)
    assert info.value.code == "unknown_batch"
