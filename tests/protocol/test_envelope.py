"""The v1 blob format: known answers, the documented layout, tamper detection, context binding, misuse."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol import envelope
from protocol.envelope import (
    ContextTemplate,
    Envelope,
    context,
    kek_check_context,
    open_blob,
    record_context,
    seal,
    secret_context,
    wrap_context,
)
from protocol.errors import InvalidRecord, UnsupportedVersion

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "envelope-v1.json").read_text())


def _documented_aad(fields: dict[str, object]) -> bytes:
    """The associated data as the module docstring spells it, without calling the module."""
    return b"consentry-blob\x00" + json.dumps({"v": 1, **fields}, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_frozen_blobs_still_open(vector: dict) -> None:
    key, blob = bytes.fromhex(vector["key"]), bytes.fromhex(vector["blob"])
    assert context(vector["context"]).hex() == vector["aad"] == _documented_aad(vector["context"]).hex()
    assert open_blob(key, blob, context(vector["context"])).hex() == vector["plaintext"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_frozen_blobs_follow_the_documented_layout(vector: dict) -> None:
    """version | nonce | ciphertext+tag: plain AES-GCM under the vector's nonce gives the frozen blob."""
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    aad = bytes.fromhex(vector["aad"])
    ciphertext = AESGCM(key).encrypt(nonce, bytes.fromhex(vector["plaintext"]), aad)
    assert (b"\x01" + nonce + ciphertext).hex() == vector["blob"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_fresh_blobs_follow_the_documented_layout(vector: dict) -> None:
    """What ``seal`` writes today opens with plain AES-GCM as the docstring (and the vectors) describe."""
    key, plaintext = bytes.fromhex(vector["key"]), bytes.fromhex(vector["plaintext"])
    blob = seal(key, plaintext, context(vector["context"]))
    assert blob[0] == 1 and len(blob) == 1 + 12 + len(plaintext) + 16
    assert AESGCM(key).decrypt(blob[1:13], blob[13:], bytes.fromhex(vector["aad"])) == plaintext


def test_named_contexts_are_the_ones_the_vectors_froze() -> None:
    by_name = {v["name"]: bytes.fromhex(v["aad"]) for v in VECTORS}
    assert record_context("records", 1, "keyboard/2026-01-01/0", "keyboard") == by_name["record"]
    assert wrap_context("mouse/2026-01-02/3") == by_name["wrapped-dek"]
    assert secret_context("device-key") == by_name["secret"]
    assert kek_check_context("v" * 32) == _documented_aad({"purpose": "kek-check", "vault_id": "v" * 32})


def test_nonce_is_never_a_parameter() -> None:
    for function in (seal, open_blob, Envelope.seal, Envelope.seal_many, Envelope.open, Envelope.__init__):
        assert "nonce" not in inspect.signature(function).parameters, function.__qualname__


def test_two_seals_of_the_same_plaintext_differ() -> None:
    key, ctx = bytes(32), secret_context("n")
    blobs = {seal(key, b"same", ctx) for _ in range(50)}
    assert len(blobs) == 50 and len({b[1:13] for b in blobs}) == 50


@pytest.mark.parametrize("position", [0, 1, 12, 13, -17, -1])
def test_flipped_byte_in_blob_is_rejected(position: int) -> None:
    key = bytes(32)
    ctx = record_context("records", 1, "mouse/2026-01-01/0", "mouse")
    blob = bytearray(seal(key, b"some window record", ctx))
    blob[position] ^= 0x01
    with pytest.raises((InvalidRecord, UnsupportedVersion)):
        open_blob(key, bytes(blob), ctx)


@pytest.mark.parametrize(
    "changed",
    [
        {"record_id": 2},
        {"table": "other"},
        {"key_id": "mouse/2026-01-02/0"},
        {"category": "keyboard"},
    ],
)
def test_blob_moved_or_relabelled_fails_to_open(changed: dict) -> None:
    key = bytes(range(32))
    fields = {"table": "records", "record_id": 1, "key_id": "mouse/2026-01-01/0", "category": "mouse"}
    blob = seal(key, b"x", record_context("records", 1, "mouse/2026-01-01/0", "mouse"))
    with pytest.raises(InvalidRecord):
        open_blob(key, blob, context({**fields, **changed}))


def test_wrong_key_is_the_same_opaque_error() -> None:
    ctx = secret_context("n")
    blob = seal(bytes(32), b"secret", ctx)
    with pytest.raises(InvalidRecord) as info:
        open_blob(bytes([1]) * 32, blob, ctx)
    assert str(info.value) == "record failed to authenticate" and repr(info.value) == "InvalidRecord()"


def test_invalid_record_carries_no_detail() -> None:
    with pytest.raises(TypeError):
        InvalidRecord("/home/alice/.local/share/consentry/vault.db")  # type: ignore[call-arg]
    assert InvalidRecord().args == ()


def test_newer_version_is_refused_before_anything_else() -> None:
    blob = bytearray(seal(bytes(32), b"x", secret_context("t")))
    blob[0] = 2
    with pytest.raises(UnsupportedVersion):
        open_blob(bytes(32), bytes(blob), secret_context("t"))


def test_truncated_blob_is_rejected() -> None:
    blob = seal(bytes(32), b"x", secret_context("t"))
    for length in (0, 1, 13, 20):
        with pytest.raises(InvalidRecord):
            open_blob(bytes(32), blob[:length], secret_context("t"))


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(31), bytes(33)])
def test_wrong_key_length_is_a_precise_value_error(bad_key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(bad_key, b"x", secret_context("t"))
    with pytest.raises(ValueError, match="32 bytes"):
        Envelope(bad_key)


def test_context_may_not_override_the_version() -> None:
    with pytest.raises(ValueError):
        context({"v": 2})


def test_an_envelope_never_shows_its_key() -> None:
    key = bytes(range(32))
    assert key.hex() not in repr(Envelope(key)) and str(list(key)) not in repr(Envelope(key))


@pytest.mark.parametrize("record_id", [0, 1, 99, 2**40])
@pytest.mark.parametrize("category", ["keyboard", "mouse", "apps", "files"])
def test_spliced_record_context_equals_the_whole_form(record_id: int, category: str) -> None:
    key_id = f"{category}/2026-11-28/{record_id % 7}"
    whole = context({"table": "records", "record_id": record_id, "key_id": key_id, "category": category})
    assert (
        record_context("records", record_id, key_id, category)
        == whole
        == _documented_aad({"table": "records", "record_id": record_id, "key_id": key_id, "category": category})
    )


def test_a_template_splices_only_a_field_it_can_find_once() -> None:
    template = ContextTemplate({"a": 'x"b":0 50%d %s', "c": 1}, "b")
    assert template(5) == context({"a": 'x"b":0 50%d %s', "c": 1, "b": 5})
    with pytest.raises(ValueError):
        ContextTemplate({"nested": {"b": 0}}, "b")  # "b":0 would be found twice


def test_envelope_interoperates_with_seal_and_open_blob() -> None:
    key = bytes(range(32))
    ctx = record_context("records", 5, "apps/2026-01-01/0", "apps")
    sealer = Envelope(key)
    assert open_blob(key, sealer.seal(b"abc", ctx), ctx) == b"abc"
    assert sealer.open(seal(key, b"def", ctx), ctx) == b"def"


def test_seal_many_opens_one_by_one_and_never_repeats_a_nonce() -> None:
    sealer = Envelope(bytes(range(32)))
    items = [(f"record {i}".encode(), record_context("records", i, "apps/2026-01-01/0", "apps")) for i in range(200)]
    blobs = sealer.seal_many(items)
    assert [sealer.open(b, ctx) for b, (_, ctx) in zip(blobs, items, strict=True)] == [p for p, _ in items]
    assert len({b[1:13] for b in blobs}) == len(blobs)
    with pytest.raises(InvalidRecord):  # each blob is bound to its own record id
        sealer.open(blobs[0], items[1][1])


def test_the_module_exports_no_other_way_to_seal() -> None:
    """One API: seal/open_blob and Envelope; the old aad-bytes cipher and its helpers are gone."""
    for gone in ("BlobCipher", "RecordAad", "record_associated_data", "associated_data", "blob_version"):
        assert not hasattr(envelope, gone), gone
