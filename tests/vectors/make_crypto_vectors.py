"""Write the frozen vectors for key files, signed requests and enrollment. Run once per new version.

Every input is fixed (key bytes, token, times, request nonces); Ed25519 signatures are deterministic,
so the same inputs always give the same files. Existing files are never rewritten: a new version adds
files. ``tests/protocol/test_crypto_vectors.py`` recomputes each from its inputs and compares.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from protocol.fields import b64encode
from protocol.keyfile import encode_key
from protocol.request_signing import digest_message, request_message, sign_request
from protocol.signing import SigningKey
from protocol.store_api import enroll_message, enroll_token_sha256
from tests.vectors.make_vectors import write_frozen

HERE = Path(__file__).parent


def keyfile_vectors() -> dict[str, object]:
    valid = [
        {"name": f"v1-{kind}", "kind": kind, "key": bytes(range(start, start + 32)).hex()}
        for kind, start in (("aes256", 0), ("ed25519", 32), ("x25519", 64))
    ]
    for case in valid:
        case["text"] = encode_key(str(case["kind"]), bytes.fromhex(str(case["key"])))
    legacy_key = bytes(range(96, 128))
    return {
        "description": "Consentry key files: version 1 is one line 'consentry-key-v1 <kind> <base64>'; "
        "version 0 (the vault KEK file before version 1) is bare base64, read only as a legacy KEK.",
        "valid": valid,
        "legacy": [
            {
                "name": "v0-kek",
                "kind": "aes256",
                "key": legacy_key.hex(),
                "text": base64.b64encode(legacy_key).decode() + "\n",
            }
        ],
        "damaged": [
            {"name": "wrong-kind", "kind": "ed25519", "text": valid[0]["text"]},
            {"name": "short-key", "kind": "aes256", "text": "consentry-key-v1 aes256 " + "AAEC" + "\n"},
            {"name": "not-base64", "kind": "aes256", "text": "consentry-key-v1 aes256 %%%%\n"},
            {"name": "extra-field", "kind": "aes256", "text": str(valid[0]["text"]).strip() + " x\n"},
            {"name": "v0-where-not-allowed", "kind": "aes256", "text": base64.b64encode(legacy_key).decode() + "\n"},
            {"name": "empty", "kind": "aes256", "text": ""},
        ],
        "newer": [
            {"name": "v2", "kind": "aes256", "text": "consentry-key-v2 aes256 " + base64.b64encode(legacy_key).decode()}
        ],
    }


def request_signing_vectors() -> dict[str, object]:
    key = SigningKey(bytes(range(128, 160)))
    cases = [
        ("device", "POST", "/v1/batches/0123456789abcdef0123456789abcdef/upload", b'{"v":1}', 1767225600, "00" * 16),
        ("device", "get", "/v1/log/proof?first=3&second=7", b"", 1767225601, "0123456789abcdef" * 2),
        (
            "steward",
            "POST",
            "/v1/batches/fedcba9876543210fedcba9876543210/approval",
            b"\x00\xff",
            1767225602,
            "ab" * 16,
        ),
    ]
    out = []
    for role, method, target, body, timestamp, nonce in cases:
        key_name = f"{role}:{key.kid}"
        headers = sign_request(key, role, method, target, body, now=timestamp, nonce=nonce)
        message = request_message(method, target, body, key_name, timestamp, nonce)
        assert message == digest_message(method, target, hashlib.sha256(body).hexdigest(), key_name, timestamp, nonce)
        out.append(
            {
                "role": role,
                "method": method,
                "target": target,
                "body": body.hex(),
                "timestamp": timestamp,
                "nonce": nonce,
                "message": message.hex(),
                "headers": headers,
            }
        )
    return {
        "description": "Signed store requests, version 1: Ed25519 over "
        "'consentry-request-v1\\0' || canonical({v, method, target, body_sha256, key, timestamp, nonce}).",
        "private_key": key.private_bytes().hex(),
        "public_key": key.public_bytes.hex(),
        "kid": key.kid,
        "cases": out,
    }


def enroll_vectors() -> dict[str, object]:
    key = SigningKey(bytes(range(160, 192)))
    token = "Ab-_" + "x" * 39  # the shape secrets.token_urlsafe(32) gives
    token_sha256 = enroll_token_sha256(token)
    public = b64encode(key.public_bytes)
    message = enroll_message(token_sha256, key.kid, public)
    return {
        "description": "Device enrollment, version 1: the store keeps SHA-256('consentry-enroll-token-v1\\0' || "
        "token); the device proves its key with Ed25519 over 'consentry-enroll-v1\\0' || "
        "canonical({v, token_sha256, device_kid, public_key}).",
        "private_key": key.private_bytes().hex(),
        "token": token,
        "token_sha256": token_sha256,
        "device_kid": key.kid,
        "public_key": public,
        "message": message.hex(),
        "proof": b64encode(key.sign(message)),
    }


def main() -> None:
    write_frozen(
        (
            ("keyfile-v1.json", keyfile_vectors()),
            ("request-signing-v1.json", request_signing_vectors()),
            ("enroll-v1.json", enroll_vectors()),
        )
    )


if __name__ == "__main__":
    main()
