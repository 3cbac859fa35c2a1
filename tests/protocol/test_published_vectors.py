"""Published test vectors through the project's own code, and interoperability with independent libraries.

HPKE (RFC 9180, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, base mode): the
published vector's ciphertexts use aad "Count-<n>", and Consentry's sealing uses single-shot HPKE with
an empty aad (cryptography's ``hpke.Suite`` has no aad parameter), so the vector's ciphertexts cannot
be opened by ``protocol.hpke_open`` as they are. Instead:

1. pycryptodome's HPKE (its own X25519, HKDF and AES-GCM in C, no OpenSSL) is first checked against
   the whole published vector: every one of its 257 encryptions and 3 exports;
2. our ``hpke_open`` is given the vector's recipient key, ``enc`` and ``info`` and a first message
   sealed under the vector's published ``key`` and ``base_nonce`` with an empty aad: it opens only
   if our code derives exactly RFC 9180's key schedule from the published inputs; the vector's own
   first ciphertext (aad "Count-0") must be refused, since our aad is empty;
3. sealed batches cross both ways: ours opened by pycryptodome, pycryptodome's opened (and a
   libsodium-signed batch verified) by ours, with ``info`` = the canonical header and an empty aad.

Ed25519 (RFC 8032 section 7.1) runs through ``protocol.signing``, and libsodium (PyNaCl) verifies
signatures made by the project for every signed format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest
from Crypto.Cipher import AES
from Crypto.Protocol import HPKE
from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key

from devkit.store_kit import T0, Agent
from protocol import (
    SealedBatch,
    SigningKey,
    StoreSealKey,
    b64decode,
    b64encode,
    hpke_open,
    hpke_seal,
    open_batch,
    open_sealed,
    sign_approval,
    sign_checkpoint,
    sign_erasure,
    sign_request,
    sign_tree_head,
    verify_signature,
)
from protocol.approval import approval_message
from protocol.auditlog import tree_head_message
from protocol.checkpoint import checkpoint_message
from protocol.erasure import erasure_message
from protocol.errors import InvalidRecord
from protocol.request_signing import request_message
from protocol.sealing import batch_signature_message

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
RFC9180 = json.loads((VECTORS / "rfc9180-hpke-x25519-sha256-aes256gcm.json").read_text())["vectors"][0]
RFC8032 = json.loads((VECTORS / "rfc8032-ed25519.json").read_text())["vectors"]
RELEASE = json.loads((VECTORS / "release-v1.json").read_text())


def _hex(name: str) -> bytes:
    return bytes.fromhex(RFC9180[name])


def _pycryptodome_receiver(private_key: bytes, enc: bytes, info: bytes) -> Any:
    return HPKE.new(
        receiver_key=import_x25519_private_key(private_key), aead_id=HPKE.AEAD.AES256_GCM, enc=enc, info=info
    )


# -- 1. the independent implementation against RFC 9180 -------------------------------------------------


def test_the_vector_is_our_suite_in_base_mode() -> None:
    assert (RFC9180["mode"], RFC9180["kem_id"], RFC9180["kdf_id"], RFC9180["aead_id"]) == (0, 0x20, 0x01, 0x02)
    assert len(RFC9180["encryptions"]) == 257 and RFC9180["encryptions"][0]["aad"] == b"Count-0".hex()


def test_pycryptodome_hpke_reproduces_every_published_encryption_and_export() -> None:
    receiver = _pycryptodome_receiver(_hex("skRm"), _hex("enc"), _hex("info"))
    for i, case in enumerate(RFC9180["encryptions"]):
        opened = receiver.unseal(bytes.fromhex(case["ct"]), bytes.fromhex(case["aad"]))
        assert opened == bytes.fromhex(case["pt"]), f"encryption {i}"
    for case in RFC9180["exports"]:
        exported = receiver.export(bytes.fromhex(case["exporter_context"]), case["L"])
        assert exported.hex() == case["exported_value"]


# -- 2. our code derives RFC 9180's key schedule ----------------------------------------------------------


def _first_message_with_empty_aad(plaintext: bytes) -> bytes:
    """Sequence 0 under the vector's published key and base nonce, aad = b"" (independent AES-GCM)."""
    cipher = AES.new(_hex("key"), AES.MODE_GCM, nonce=_hex("base_nonce"), mac_len=16)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return ciphertext + tag


def test_our_recipient_key_is_the_vectors() -> None:
    assert StoreSealKey(_hex("skRm")).public_bytes == _hex("pkRm")


@pytest.mark.parametrize("plaintext", [b"", bytes.fromhex(RFC9180["encryptions"][0]["pt"]), bytes(range(256)) * 40])
def test_our_hpke_open_derives_the_published_key_schedule(plaintext: bytes) -> None:
    store_key = StoreSealKey(_hex("skRm"))
    sealed = _hex("enc") + _first_message_with_empty_aad(plaintext)
    assert hpke_open(store_key, sealed, _hex("info")) == plaintext
    with pytest.raises(InvalidRecord):  # the same bytes under another info derive another key
        hpke_open(store_key, sealed, _hex("info") + b"x")


def test_the_published_count_0_ciphertext_is_refused_because_our_aad_is_empty() -> None:
    first = RFC9180["encryptions"][0]
    with pytest.raises(InvalidRecord):
        hpke_open(StoreSealKey(_hex("skRm")), _hex("enc") + bytes.fromhex(first["ct"]), _hex("info"))


# -- 3. sealed batches both ways ------------------------------------------------------------------------------


@pytest.fixture
def batch() -> tuple[Agent, StoreSealKey, bytes, SealedBatch]:
    agent = Agent()
    store = StoreSealKey.generate()
    manifest, payload = agent.next_batch(6)
    return agent, store, payload, agent.seal(manifest, payload, store.public_bytes)


def test_pycryptodome_opens_our_sealed_batch_with_the_header_as_info_and_no_aad(batch) -> None:
    _, store, payload, sealed_batch = batch
    sealed = b64decode(sealed_batch.sealed)
    assert sealed[0] == 1
    receiver = _pycryptodome_receiver(store.private_bytes(), sealed[1:33], sealed_batch.header.canonical_bytes())
    assert receiver.unseal(sealed[33:]) == payload


def test_pycryptodome_opens_the_frozen_release_vector() -> None:
    store = bytes.fromhex(RELEASE["store_private_key"])
    batch = SealedBatch.model_validate(RELEASE["sealed_batch"])
    sealed = b64decode(batch.sealed)
    receiver = _pycryptodome_receiver(store, sealed[1:33], bytes.fromhex(RELEASE["header_canonical_hex"]))
    assert receiver.unseal(sealed[33:]).hex() == RELEASE["payload_hex"]


def test_our_code_opens_a_batch_sealed_by_pycryptodome_and_signed_by_libsodium(batch) -> None:
    agent, store, payload, ours = batch
    header = ours.header
    sender = HPKE.new(
        receiver_key=import_x25519_public_key(store.public_bytes),
        aead_id=HPKE.AEAD.AES256_GCM,
        info=header.canonical_bytes(),
    )
    sealed = b"\x01" + sender.enc + sender.seal(payload)
    assert open_sealed(sealed, header, store) == payload
    assert hpke_open(store, sealed[1:], header.canonical_bytes()) == payload
    device = nacl.signing.SigningKey(agent.device.private_bytes())
    signature = device.sign(batch_signature_message(header, sealed)).signature
    theirs = SealedBatch(v=1, header=header, sealed=b64encode(sealed), signature=b64encode(signature))
    assert open_batch(theirs, store, agent.device.public_bytes) == payload


def test_pycryptodome_opens_what_hpke_seal_makes() -> None:
    store = StoreSealKey.generate()
    sealed = hpke_seal(store.public_bytes, b"payload", b"info")
    assert _pycryptodome_receiver(store.private_bytes(), sealed[:32], b"info").unseal(sealed[32:]) == b"payload"


# -- Ed25519: RFC 8032 and libsodium ------------------------------------------------------------------------


@pytest.mark.parametrize("case", RFC8032, ids=lambda c: c["name"])
def test_rfc8032_vectors_run_through_protocol_signing(case: dict[str, str]) -> None:
    key = SigningKey(bytes.fromhex(case["secret_key"]))
    message, signature = bytes.fromhex(case["message"]), bytes.fromhex(case["signature"])
    assert key.public_bytes.hex() == case["public_key"]
    assert key.sign(message) == signature  # Ed25519 is deterministic
    verify_signature(bytes.fromhex(case["public_key"]), message, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(InvalidRecord):
        verify_signature(bytes.fromhex(case["public_key"]), message, tampered)
    # and libsodium agrees on the same published vector
    assert nacl.signing.VerifyKey(key.public_bytes).verify(message, signature) == message


def _signed_by_the_project() -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    """The public key, and (what, message, signature) for every signed format, made by the project's code."""
    device = SigningKey.generate()
    headers = sign_request(device, "device", "post", "/v1/uploads?x=1", b"{}", now=T0)
    cp = sign_checkpoint(device, 7, "ab" * 32, created=T0)
    approval = sign_approval(device, "cd" * 16, "ef" * 32, "approve", created=T0)
    erasure = sign_erasure(device, "12" * 16, "subj-0123456789", created=T0)
    head = sign_tree_head(device, 3, bytes(32), timestamp=T0)
    agent = Agent(device=device)
    manifest, payload = agent.next_batch(3)
    sealed = agent.seal(manifest, payload, StoreSealKey.generate().public_bytes)
    return device.public_bytes, [
        (
            "request",
            request_message("POST", "/v1/uploads?x=1", b"{}", headers["consentry-key"], T0, headers["consentry-nonce"]),
            b64decode(headers["consentry-signature"]),
        ),
        ("checkpoint", checkpoint_message(cp.seq, cp.head_hash, cp.device_kid, cp.at), bytes.fromhex(cp.signature)),
        (
            "approval",
            approval_message(approval.batch_id, approval.manifest_sha256, "approve"),
            b64decode(approval.signature),
        ),
        ("erasure", erasure_message(erasure.request_id, erasure.subject, device.kid, T0), b64decode(erasure.signature)),
        ("tree head", tree_head_message(3, bytes(32).hex(), T0), b64decode(head.signature)),
        ("batch", batch_signature_message(sealed.header, b64decode(sealed.sealed)), b64decode(sealed.signature)),
    ]


def test_libsodium_verifies_every_signature_the_project_makes() -> None:
    public_key, signed = _signed_by_the_project()
    verifier = nacl.signing.VerifyKey(public_key)
    for what, message, signature in signed:
        assert verifier.verify(message, signature) == message, what
        with pytest.raises(nacl.exceptions.BadSignatureError):
            verifier.verify(message + b"\0", signature)
