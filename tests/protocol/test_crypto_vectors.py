"""Frozen vectors for signed requests, enrollment and key files: today's code must reproduce them exactly.

The vectors were written once by tests/vectors/make_crypto_vectors.py from fixed inputs; a change of
message layout, prefix, canonical form, header or key-file line makes these fail.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from protocol.canonical import canonical_json
from protocol.errors import KeyUnavailable, UnsupportedVersion
from protocol.fields import b64decode
from protocol.keyfile import decode_key, encode_key
from protocol.request_signing import digest_message, request_message, sign_request
from protocol.signing import SigningKey, is_valid_signature
from protocol.store_api import enroll_message, enroll_token_sha256

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


REQUESTS = _load("request-signing-v1.json")
ENROLL = _load("enroll-v1.json")
KEYFILES = _load("keyfile-v1.json")


# -- signed requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: f"{c['role']}-{c['method']}")
def test_signed_request_headers_are_reproduced(case: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(REQUESTS["private_key"]))
    assert (key.kid, key.public_bytes.hex()) == (REQUESTS["kid"], REQUESTS["public_key"])
    headers = sign_request(
        key,
        case["role"],
        case["method"],
        case["target"],
        bytes.fromhex(case["body"]),
        now=case["timestamp"],
        nonce=case["nonce"],
    )
    assert headers == case["headers"]


@pytest.mark.parametrize("case", REQUESTS["cases"], ids=lambda c: f"{c['role']}-{c['method']}")
def test_signed_request_message_is_the_documented_layout(case: dict[str, Any]) -> None:
    body = bytes.fromhex(case["body"])
    key_name = case["headers"]["consentry-key"]
    documented = b"consentry-request-v1\0" + canonical_json(
        {
            "v": 1,
            "method": case["method"].upper(),
            "target": case["target"],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "key": key_name,
            "timestamp": case["timestamp"],
            "nonce": case["nonce"],
        }
    )
    assert documented.hex() == case["message"]
    assert request_message(case["method"], case["target"], body, key_name, case["timestamp"], case["nonce"]) == (
        documented
    )
    body_sha256 = hashlib.sha256(body).hexdigest()
    assert digest_message(case["method"], case["target"], body_sha256, key_name, case["timestamp"], case["nonce"]) == (
        documented
    )
    signature = b64decode(case["headers"]["consentry-signature"])
    assert is_valid_signature(bytes.fromhex(REQUESTS["public_key"]), documented, signature)


def test_a_request_signature_does_not_cover_another_target() -> None:
    case = REQUESTS["cases"][0]
    other = request_message(
        case["method"],
        case["target"] + "x",
        bytes.fromhex(case["body"]),
        case["headers"]["consentry-key"],
        case["timestamp"],
        case["nonce"],
    )
    signature = b64decode(case["headers"]["consentry-signature"])
    assert not is_valid_signature(bytes.fromhex(REQUESTS["public_key"]), other, signature)


# -- enrollment --------------------------------------------------------------------------------------


def test_enrollment_token_digest_and_proof_are_reproduced() -> None:
    key = SigningKey(bytes.fromhex(ENROLL["private_key"]))
    assert key.kid == ENROLL["device_kid"]
    assert enroll_token_sha256(ENROLL["token"]) == ENROLL["token_sha256"]
    assert (
        hashlib.sha256(b"consentry-enroll-token-v1\0" + ENROLL["token"].encode()).hexdigest() == ENROLL["token_sha256"]
    )
    message = enroll_message(ENROLL["token_sha256"], key.kid, ENROLL["public_key"])
    documented = b"consentry-enroll-v1\0" + canonical_json(
        {"v": 1, "token_sha256": ENROLL["token_sha256"], "device_kid": key.kid, "public_key": ENROLL["public_key"]}
    )
    assert message == documented and message.hex() == ENROLL["message"]
    assert b64decode(ENROLL["proof"]) == key.sign(message)  # Ed25519 is deterministic
    assert is_valid_signature(b64decode(ENROLL["public_key"]), message, b64decode(ENROLL["proof"]))


def test_an_enrollment_proof_is_bound_to_its_token() -> None:
    other = enroll_message(enroll_token_sha256(ENROLL["token"] + "x"), ENROLL["device_kid"], ENROLL["public_key"])
    assert not is_valid_signature(b64decode(ENROLL["public_key"]), other, b64decode(ENROLL["proof"]))


# -- key files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", KEYFILES["valid"], ids=lambda c: c["name"])
def test_version_1_key_files_are_reproduced_and_read(case: dict[str, Any]) -> None:
    key = bytes.fromhex(case["key"])
    assert encode_key(case["kind"], key) == case["text"]
    assert decode_key(case["text"], case["kind"]) == key


@pytest.mark.parametrize("case", KEYFILES["legacy"], ids=lambda c: c["name"])
def test_version_0_kek_files_are_still_read_where_allowed(case: dict[str, Any]) -> None:
    assert decode_key(case["text"], case["kind"], legacy=True) == bytes.fromhex(case["key"])
    with pytest.raises(KeyUnavailable):
        decode_key(case["text"], case["kind"])


@pytest.mark.parametrize("case", KEYFILES["damaged"], ids=lambda c: c["name"])
def test_damaged_key_files_are_refused_without_detail(case: dict[str, Any]) -> None:
    with pytest.raises(KeyUnavailable) as info:
        decode_key(case["text"], case["kind"])
    assert case["text"].strip() == "" or case["text"].split()[-1] not in str(info.value)


@pytest.mark.parametrize("case", KEYFILES["newer"], ids=lambda c: c["name"])
def test_newer_key_files_are_refused_before_anything_else(case: dict[str, Any]) -> None:
    for legacy in (False, True):
        with pytest.raises(UnsupportedVersion):
            decode_key(case["text"], case["kind"], legacy=legacy)
