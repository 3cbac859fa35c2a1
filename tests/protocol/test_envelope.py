"""The v1 blob format: known answers, tamper detection, context binding, misuse errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.envelope import (
    BlobCipher,
    associated_data,
    open_blob,
    record_associated_data,
    record_context,
    seal,
)
from protocol.errors import InvalidRecord, UnsupportedVersion

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "envelope-v1.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_known_answer_vectors_still_seal_and_open(vector: dict) -> None:
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    plaintext = bytes.fromhex(vector["plaintext"])
    assert seal(key, plaintext, vector["context"], nonce=nonce).hex() == vector["blob"]
    assert open_blob(key, bytes.fromhex(vector["blob"]), vector["context"]) == plaintext


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_documented_layout_decrypts_with_plain_aes_gcm(vector: dict) -> None:
    """The byte layout in the module docstring is the truth: version | nonce | ciphertext+tag."""
    blob = bytes.fromhex(vector["blob"])
    assert blob[0] == 1
    aad = (
        b"consentry-blob\x00"
        + json.dumps({"v": 1, **vector["context"]}, sort_keys=True, separators=(",", ":")).encode()
    )
    assert aad.hex() == vector["aad"]
    plain = AESGCM(bytes.fromhex(vector["key"])).decrypt(blob[1:13], blob[13:], aad)
    assert plain.hex() == vector["plaintext"]


@pytest.mark.parametrize("position", [0, 1, 12, 13, -17, -1])
def test_flipped_byte_in_blob_is_rejected(position: int) -> None:
    key = bytes(32)
    context = record_context("records", 1, "mouse/2026-01-01/0", "mouse")
    blob = bytearray(seal(key, b"some window record", context))
    blob[position] ^= 0x01
    with pytest.raises((InvalidRecord, UnsupportedVersion)):
        open_blob(key, bytes(blob), context)


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
    context = record_context("records", 1, "mouse/2026-01-01/0", "mouse")
    blob = seal(key, b"x", context)
    with pytest.raises(InvalidRecord):
        open_blob(key, blob, {**context, **changed})


def test_wrong_key_is_the_same_opaque_error() -> None:
    context = {"purpose": "secret", "name": "n"}
    blob = seal(bytes(32), b"secret", context)
    with pytest.raises(InvalidRecord) as info:
        open_blob(bytes([1]) * 32, blob, context)
    assert str(info.value) == "record failed to authenticate"


def test_newer_version_is_refused_before_anything_else() -> None:
    blob = bytearray(seal(bytes(32), b"x", {"purpose": "t"}))
    blob[0] = 2
    with pytest.raises(UnsupportedVersion):
        open_blob(bytes(32), bytes(blob), {"purpose": "t"})


def test_truncated_blob_is_rejected() -> None:
    blob = seal(bytes(32), b"x", {"purpose": "t"})
    for length in (0, 1, 13, 20):
        with pytest.raises(InvalidRecord):
            open_blob(bytes(32), blob[:length], {"purpose": "t"})


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(31), bytes(33)])
def test_wrong_key_length_is_a_precise_value_error(bad_key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(bad_key, b"x", {"purpose": "t"})


def test_context_may_not_override_the_version() -> None:
    with pytest.raises(ValueError):
        associated_data({"v": 2})


@pytest.mark.parametrize("record_id", [0, 1, 99, 2**40])
@pytest.mark.parametrize("category", ["keyboard", "mouse", "apps", "files"])
def test_fast_record_aad_equals_the_canonical_form(record_id: int, category: str) -> None:
    key_id = f"{category}/2026-11-28/{record_id % 7}"
    assert record_associated_data("records", record_id, key_id, category) == associated_data(
        record_context("records", record_id, key_id, category)
    )


def test_blob_cipher_interoperates_with_seal() -> None:
    key = bytes(range(32))
    context = record_context("records", 5, "apps/2026-01-01/0", "apps")
    cipher = BlobCipher(key)
    assert open_blob(key, cipher.seal(b"abc", associated_data(context)), context) == b"abc"
    assert cipher.open(seal(key, b"def", context), associated_data(context)) == b"def"


def test_seal_many_matches_seal_and_never_repeats_a_nonce() -> None:
    cipher = BlobCipher(bytes(range(32)))
    items = [(f"record {i}".encode(), f"aad {i}".encode()) for i in range(200)]
    blobs = cipher.seal_many(items)
    assert [cipher.open(b, aad) for b, (_, aad) in zip(blobs, items, strict=True)] == [p for p, _ in items]
    assert len({b[1:13] for b in blobs}) == len(blobs)
