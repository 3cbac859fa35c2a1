"""Release wire formats: sealing, signatures, manifests, approvals, privacy checks, frozen vectors."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest

from devkit.store_kit import T0, Agent, Stewards, make_records, receipt_ref
from protocol import (
    NO_PREVIOUS_BATCH,
    Approval,
    BatchHeader,
    BatchManifest,
    BatchManifestV1,
    BatchManifestV2,
    LedgerCheckpoint,
    LedgerCheckpointRef,
    SealedBatch,
    SigningKey,
    StoreSealKey,
    TreeHead,
    b64decode,
    b64encode,
    build_header,
    decode_payload,
    encode_payload,
    manifest_digest,
    open_batch,
    payload_digest,
    read_manifest,
    rekey_app_tokens,
    run_privacy_checks,
    seal_batch,
    sign_approval,
    tally,
    verify_checkpoint,
    verify_erasure,
    verify_tree_head,
)
from protocol.batch import header_mismatches
from protocol.canonical import canonical_json
from protocol.categories import Category
from protocol.erasure import ErasureRequest
from protocol.errors import InvalidRecord, UnsupportedVersion
from protocol.manifest import withheld_from_stewards
from protocol.privacy import STORE_CHECKS
from protocol.windows import AppsWindow, parse_window, window_to_json_dict

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "release-v1.json").read_text())
MANIFEST_V2 = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "manifest-v2.json").read_text())


@pytest.fixture
def sealed_setup() -> tuple[Agent, StoreSealKey, BatchManifest, bytes, SealedBatch]:
    agent = Agent()
    store = StoreSealKey.generate()
    manifest, payload = agent.next_batch(9)
    return agent, store, manifest, payload, agent.seal(manifest, payload, store.public_bytes)


def _with_sealed(batch: SealedBatch, sealed: bytes) -> SealedBatch:
    return batch.model_copy(update={"sealed": b64encode(sealed)})


def test_sealed_batch_opens_to_the_payload(sealed_setup) -> None:
    agent, store, _, payload, sealed = sealed_setup
    assert open_batch(sealed, store, agent.device.public_bytes) == payload


def test_flipped_byte_anywhere_in_the_sealed_bytes_is_rejected(sealed_setup) -> None:
    agent, store, _, _, batch = sealed_setup
    raw = b64decode(batch.sealed)
    for position in [1, 2, 20, 32, 33, 40, len(raw) // 2, len(raw) - 17, len(raw) - 1]:
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        with pytest.raises(InvalidRecord):
            open_batch(_with_sealed(batch, bytes(flipped)), store, agent.device.public_bytes)


def test_unknown_sealed_version_is_rejected_before_anything_else(sealed_setup) -> None:
    agent, store, _, _, batch = sealed_setup
    raw = bytearray(b64decode(batch.sealed))
    raw[0] = 2
    with pytest.raises(UnsupportedVersion):
        open_batch(_with_sealed(batch, bytes(raw)), store, agent.device.public_bytes)


@pytest.mark.parametrize("field", ["seq", "created", "subject", "manifest_sha256", "ledger_checkpoint"])
def test_edited_header_is_rejected_even_when_re_signed_by_the_device(sealed_setup, field: str) -> None:
    agent, store, _, _, batch = sealed_setup
    changes = {
        "seq": {"seq": batch.header.seq + 1},
        "created": {"created": batch.header.created + 1},
        "subject": {"subject": "subj-someone-else"},
        "manifest_sha256": {"manifest_sha256": "00" * 32},
        "ledger_checkpoint": {"ledger_checkpoint": batch.header.ledger_checkpoint.model_copy(update={"seq": 99})},
    }[field]
    edited = batch.header.model_copy(update=changes)
    tampered = batch.model_copy(update={"header": edited})
    with pytest.raises(InvalidRecord):  # the signature no longer covers it
        open_batch(tampered, store, agent.device.public_bytes)
    # A device that re-signs the edited header still cannot make the store decrypt it: the header is HPKE info.
    from protocol.sealing import batch_signature_message

    resigned = tampered.model_copy(
        update={"signature": b64encode(agent.device.sign(batch_signature_message(edited, b64decode(batch.sealed))))}
    )
    with pytest.raises(InvalidRecord):
        open_batch(resigned, store, agent.device.public_bytes)


def test_flipped_signature_or_other_device_key_is_rejected(sealed_setup) -> None:
    agent, store, _, _, batch = sealed_setup
    sig = bytearray(b64decode(batch.signature))
    sig[10] ^= 0x80
    with pytest.raises(InvalidRecord):
        open_batch(batch.model_copy(update={"signature": b64encode(bytes(sig))}), store, agent.device.public_bytes)
    with pytest.raises(InvalidRecord):
        open_batch(batch, store, SigningKey.generate().public_bytes)


def test_batch_sealed_to_another_store_key_does_not_open(sealed_setup) -> None:
    agent, _, manifest, payload, _ = sealed_setup
    other = StoreSealKey.generate()
    batch = agent.seal(manifest, payload, other.public_bytes)
    with pytest.raises(InvalidRecord):
        open_batch(batch, StoreSealKey.generate(), agent.device.public_bytes)


def test_sealing_with_a_key_that_is_not_the_headers_device_is_misuse(sealed_setup) -> None:
    _, store, _manifest, payload, batch = sealed_setup
    with pytest.raises(ValueError, match="device_kid"):
        seal_batch(batch.header, payload, store.public_bytes, SigningKey.generate())
    with pytest.raises(ValueError, match="32 bytes"):
        seal_batch(batch.header, payload, b"short", SigningKey.generate())


@pytest.mark.parametrize("model", [BatchHeader, SealedBatch, Approval, LedgerCheckpoint, TreeHead])
def test_unknown_wire_version_is_refused_before_other_fields(model: type) -> None:
    with pytest.raises(UnsupportedVersion):
        model.model_validate({"v": 2, "anything": "else"})


def test_unknown_manifest_version_is_refused_before_other_fields() -> None:
    for version in (0, 3, 99):
        with pytest.raises(UnsupportedVersion):
            read_manifest({"v": version, "anything": "else"})
        with pytest.raises(UnsupportedVersion):
            read_manifest(json.dumps({"v": version}))
    with pytest.raises(UnsupportedVersion):  # each version's model takes only its own
        BatchManifestV1.model_validate({"v": 2, "anything": "else"})
    with pytest.raises(UnsupportedVersion):
        BatchManifestV2.model_validate({"v": 1, "anything": "else"})


# --- manifest versions -----------------------------------------------------------------------------------
def test_new_manifests_are_version_2_and_name_no_device() -> None:
    agent = Agent()
    manifest, _ = agent.next_batch(3)
    assert isinstance(manifest, BatchManifestV2) and manifest.v == 2
    assert "device_kid" not in manifest.canonical_dict() and agent.device.kid not in manifest.model_dump_json()
    assert read_manifest(manifest.model_dump_json()) == manifest
    assert withheld_from_stewards(manifest) == ()


def test_a_version_2_manifest_naming_a_device_is_refused() -> None:
    manifest, _ = Agent().next_batch(3)
    with pytest.raises(ValueError, match="device_kid"):
        read_manifest({**manifest.canonical_dict(), "device_kid": "56475aa75463474c"})


def test_a_version_1_manifest_is_read_and_hashed_as_sent() -> None:
    agent = Agent()
    manifest, _ = agent.next_batch(3, version=1)
    assert isinstance(manifest, BatchManifestV1) and manifest.device_kid == agent.device.kid
    again = read_manifest(manifest.model_dump_json())
    assert again == manifest and manifest_digest(again) == manifest_digest(manifest)
    assert withheld_from_stewards(manifest) == ("device_kid",)
    version_2 = read_manifest({**{k: v for k, v in manifest.canonical_dict().items() if k != "device_kid"}, "v": 2})
    assert manifest_digest(version_2) != manifest_digest(manifest)  # the version is part of what is hashed


def test_the_header_binds_the_device_for_both_versions() -> None:
    agent, other = Agent(), SigningKey.generate()
    ref = LedgerCheckpointRef(seq=1, head_hash="ab" * 32)
    for version in (1, 2):
        manifest, _ = agent.next_batch(3, version=version)
        header = build_header(manifest, ref, device_kid=agent.device.kid, created=T0)
        assert header.device_kid == agent.device.kid and header_mismatches(header, manifest) == ()
        other_device = header.model_copy(update={"device_kid": other.kid})
        if version == 1:  # the manifest names its device: another in the header is a mismatch
            with pytest.raises(ValueError, match="device_kid"):
                build_header(manifest, ref, device_kid=other.kid, created=T0)
            assert header_mismatches(other_device, manifest) == ("device_kid",)
        else:  # the store compares the header's device with the one that submitted the manifest
            assert header_mismatches(other_device, manifest) == ()


def test_manifest_v2_vectors_reproduce_from_the_version_1_vector() -> None:
    v = MANIFEST_V2
    manifest = read_manifest(v["manifest"])
    assert isinstance(manifest, BatchManifestV2)
    assert canonical_json(manifest.canonical_dict()).hex() == v["manifest_canonical_hex"]
    assert manifest_digest(manifest) == v["manifest_sha256"] != v["manifest_v1_sha256"]
    v1 = read_manifest(VECTORS["manifest"])
    assert {**v1.canonical_dict(), "v": 2} == {**manifest.canonical_dict(), "device_kid": VECTORS["device_kid"], "v": 2}
    device = SigningKey(bytes.fromhex(VECTORS["device_private_key"]))
    header = BatchHeader.model_validate(v["header"])
    assert header.canonical_bytes().hex() == v["header_canonical_hex"] and header.device_kid == device.kid
    assert build_header(manifest, header.ledger_checkpoint, device_kid=device.kid, created=header.created) == header
    steward = SigningKey(bytes.fromhex(VECTORS["steward_private_key"]))
    approval = Approval.model_validate(v["approval"])
    assert (
        sign_approval(steward, manifest.batch_id, v["manifest_sha256"], "approve", created=approval.created) == approval
    )


def test_payload_round_trips_and_an_unknown_version_is_refused() -> None:
    batch_id = uuid.uuid4().hex
    records = make_records(4)
    payload = encode_payload(batch_id, records)
    decoded = decode_payload(payload)
    assert decoded.batch_id == batch_id and len(decoded.records) == 4
    assert payload == json.dumps(json.loads(payload), separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(ValueError, match="top-level"):
        decode_payload(json.dumps({"v": 1, "batch_id": batch_id, "records": [{}], "extra": 1}).encode())
    with pytest.raises(UnsupportedVersion):
        decode_payload(json.dumps({"v": 9, "batch_id": batch_id, "records": []}).encode())


def test_manifests_chain_by_digest() -> None:
    agent = Agent()
    first, _ = agent.next_batch(3)
    second, _ = agent.next_batch(3)
    assert first.seq == 1 and first.prev_batch_hash == NO_PREVIOUS_BATCH
    assert second.seq == 2 and second.prev_batch_hash == manifest_digest(first)
    assert all(c.passed for c in first.privacy_checks)


# --- privacy checks -------------------------------------------------------------------------------------
def _raw(n: int = 6) -> list[dict]:
    return [window_to_json_dict(r) for r in make_records(n)]


def _receipts() -> list:
    return [receipt_ref(c, f"r-{c.value}") for c in Category]


def _counts(raw: list[dict]) -> dict[Category, int]:
    counts: dict[Category, int] = {}
    for r in raw:
        counts[Category(r["category"])] = counts.get(Category(r["category"]), 0) + 1
    return counts


def _failed(raw: list[dict], counts: dict | None = None, receipts: list | None = None) -> set[str]:
    checks = run_privacy_checks(raw, receipts or _receipts(), counts or _counts(raw), names=STORE_CHECKS)
    return {c.name for c in checks if not c.passed}


def test_clean_records_pass_every_store_check() -> None:
    assert _failed(_raw()) == set()


def test_field_outside_the_schema_fails_schema_and_free_text_checks() -> None:
    raw = _raw()
    raw[0]["window_title"] = "Quarterly salaries.xlsx"
    assert {"schema", "no_free_text"} <= _failed(raw)


@pytest.mark.parametrize(
    ("category", "field", "value"),
    [
        ("keyboard", "bursts", "6"),
        ("keyboard", "sparse", 0),
        ("keyboard", "end", "as a float"),
        ("mouse", "moves", True),
    ],
)
def test_a_value_of_the_wrong_json_type_is_outside_the_schema(category: str, field: str, value: object) -> None:
    """The store keeps each record as sent: a number sent as text would be stored as text and break the
    exports that read it as a number, so the schema takes JSON types as they are, with no conversion."""
    raw = _raw()
    record = next(r for r in raw if r["category"] == category)
    assert field in record
    record[field] = float(record[field]) if value == "as a float" else value
    assert "schema" in _failed(raw)


def test_free_text_in_receipt_id_fails_even_though_the_schema_allows_the_string() -> None:
    raw = _raw()
    raw[0]["receipt_id"] = "dear diary"
    assert "no_free_text" in _failed(raw)


def test_record_without_a_covering_receipt_fails_consent_coverage() -> None:
    raw = _raw()
    late = [receipt_ref(c, f"r-{c.value}", granted_at=T0 + 10**6) for c in Category]
    assert "consent_coverage" in _failed(raw, receipts=late)
    wrong_category = [receipt_ref(Category.FILES, f"r-{c.value}") for c in Category]
    assert "consent_coverage" in _failed(raw, receipts=wrong_category)


def test_counts_that_differ_from_the_manifest_fail() -> None:
    raw = _raw()
    counts = _counts(raw)
    counts[Category.KEYBOARD] += 1
    assert "counts_match" in _failed(raw, counts=counts)


def test_app_tokens_are_stable_within_a_batch_and_unlinkable_across_batches() -> None:
    records = make_records(6)
    a = rekey_app_tokens(records, secrets.token_bytes(32))
    b = rekey_app_tokens(records, secrets.token_bytes(32))
    same = rekey_app_tokens(records + records, bytes(32))

    def tokens(rs: list) -> list[str]:
        return [f.app for r in rs if isinstance(r, AppsWindow) for f in r.focus if f.app.startswith("anon:")]

    assert set(tokens(a)).isdisjoint(tokens(b)) and set(tokens(a)).isdisjoint(tokens(records))
    assert tokens(same)[: len(tokens(same)) // 2] == tokens(same)[len(tokens(same)) // 2 :]
    assert [f.app for r in a if isinstance(r, AppsWindow) for f in r.focus if f.app.startswith("cat:")]
    with pytest.raises(ValueError, match="32 bytes"):
        rekey_app_tokens(records, b"short")


def test_manifest_records_a_failed_rekey_check_when_tokens_were_not_rekeyed() -> None:
    from protocol import build_manifest

    records = make_records(6)
    batch_id = uuid.uuid4().hex
    payload = encode_payload(batch_id, records)
    manifest = build_manifest(
        batch_id=batch_id,
        subject="subj-00000001",
        seq=1,
        prev_batch_hash=NO_PREVIOUS_BATCH,
        records=records,
        receipts=_receipts(),
        payload=payload,
        created=T0,
        source_records=records,
    )
    assert manifest.failed_checks() == ("app_tokens_rekeyed",)


# --- approvals ------------------------------------------------------------------------------------------
@pytest.fixture
def approval_setup() -> tuple[Stewards, Agent, BatchManifest]:
    agent = Agent()
    manifest, _ = agent.next_batch(3)
    return Stewards.make(3, 2), agent, manifest


def _tally(stewards: Stewards, agent: Agent, manifest: BatchManifest, approvals: list, config=None):
    return tally(
        approvals,
        config or stewards.config(),
        batch_id=manifest.batch_id,
        manifest_sha256=manifest_digest(manifest),
        device_public_key=agent.device.public_bytes,
    )


def test_m_of_n_approvals_approve(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    assert _tally(stewards, agent, manifest, stewards.approvals(manifest, 1)).status == "pending"
    assert _tally(stewards, agent, manifest, stewards.approvals(manifest, 2)).status == "approved"


def test_one_steward_counts_once(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    twice = stewards.approvals(manifest, 1) * 2
    result = _tally(stewards, agent, manifest, twice)
    assert result.status == "pending" and [i.reason for i in result.ignored] == ["duplicate"]


def test_unknown_key_counts_for_nothing(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    stranger = sign_approval(SigningKey.generate(), manifest.batch_id, manifest_digest(manifest), "approve", created=T0)
    result = _tally(stewards, agent, manifest, stewards.approvals(manifest, 1) + [stranger])
    assert result.status == "pending" and [i.reason for i in result.ignored] == ["unknown_key"]


def test_the_devices_own_key_never_counts_even_when_listed_as_a_steward(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    config = stewards.config({"sneaky": b64encode(agent.device.public_bytes)})
    own = sign_approval(agent.device, manifest.batch_id, manifest_digest(manifest), "approve", created=T0)
    result = _tally(stewards, agent, manifest, stewards.approvals(manifest, 1) + [own], config)
    assert result.status == "pending" and [i.reason for i in result.ignored] == ["device_key"]


def test_tampered_approval_counts_for_nothing(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    good = stewards.approvals(manifest, 2)
    sig = bytearray(b64decode(good[1].signature))
    sig[0] ^= 1
    bad = good[1].model_copy(update={"signature": b64encode(bytes(sig))})
    other_manifest = good[1].model_copy(update={"manifest_sha256": "11" * 32})
    assert _tally(stewards, agent, manifest, [good[0], bad]).status == "pending"
    assert _tally(stewards, agent, manifest, [good[0], other_manifest]).status == "pending"


def test_one_rejection_by_a_listed_steward_rejects(approval_setup) -> None:
    stewards, agent, manifest = approval_setup
    no = sign_approval(
        stewards.signers[2], manifest.batch_id, manifest_digest(manifest), "reject", created=T0, reason="x"
    )
    assert _tally(stewards, agent, manifest, stewards.approvals(manifest, 2) + [no]).status == "rejected"
    with pytest.raises(ValueError, match="reason"):
        sign_approval(stewards.signers[2], manifest.batch_id, manifest_digest(manifest), "reject", created=T0)


# --- frozen known-answer vectors -----------------------------------------------------------------------
def test_release_v1_vectors_still_verify_and_reproduce() -> None:
    v = VECTORS
    device = SigningKey(bytes.fromhex(v["device_private_key"]))
    steward = SigningKey(bytes.fromhex(v["steward_private_key"]))
    log = SigningKey(bytes.fromhex(v["log_private_key"]))
    store = StoreSealKey(bytes.fromhex(v["store_private_key"]))
    assert device.kid == v["device_kid"] and store.public_bytes.hex() == v["store_public_key"]
    payload = bytes.fromhex(v["payload_hex"])
    assert payload_digest(payload) == v["payload_sha256"]
    manifest = read_manifest(v["manifest"])  # a version-1 manifest, hashed as it always was
    assert manifest.v == 1 and manifest_digest(manifest) == v["manifest_sha256"]
    header = BatchHeader.model_validate(v["header"])
    assert header.canonical_bytes().hex() == v["header_canonical_hex"]
    assert build_header(manifest, header.ledger_checkpoint, device_kid=device.kid, created=header.created) == header
    sealed = SealedBatch.model_validate(v["sealed_batch"])
    assert open_batch(sealed, store, device.public_bytes) == payload
    approval = Approval.model_validate(v["approval"])
    again = sign_approval(steward, approval.batch_id, approval.manifest_sha256, "approve", created=approval.created)
    assert again == approval  # Ed25519 is deterministic: same bytes signed, same signature
    checkpoint = LedgerCheckpoint.model_validate(v["checkpoint"])
    verify_checkpoint(checkpoint, device.public_bytes)
    verify_erasure(ErasureRequest.model_validate(v["erasure"]), device.public_bytes)
    head = TreeHead.model_validate(v["tree_head"])
    verify_tree_head(head, log.public_bytes)
    records = decode_payload(payload).records
    rekeyed = rekey_app_tokens(make_records(4), bytes.fromhex(v["app_token_batch_key"]))
    assert rekeyed == [parse_window(r) for r in records]
