"""Signed HTTP requests: how agents and stewards prove which key sends a request (client and server).

Headers: ``Consentry-Key`` (``device:<kid>`` or ``steward:<kid>``), ``Consentry-Timestamp`` (UTC
seconds), ``Consentry-Nonce`` (32 hex, fresh per attempt) and ``Consentry-Signature`` (base64 Ed25519)
over, version 1::

    b"consentry-request-v1\\0" || canonical({"v": 1, "method", "target", "body_sha256", "key",
                                             "timestamp", "nonce"})

``target`` is the raw path plus ``?query`` when there is one. The server refuses a timestamp outside its
clock-skew window and a nonce it has seen for that key (nonces are kept for twice the window).
Everything but the signature itself is checked from the headers before the body is read
(``store.gate``); the body's digest and the signature are checked once it has streamed in.
"""

from __future__ import annotations

import secrets

from protocol import domains
from protocol.canonical import canonical_json, sha256_hex
from protocol.fields import b64encode
from protocol.signing import Signer

KEY_HEADER = "consentry-key"
TIMESTAMP_HEADER = "consentry-timestamp"
NONCE_HEADER = "consentry-nonce"
SIGNATURE_HEADER = "consentry-signature"


def request_message(method: str, target: str, body: bytes, key: str, timestamp: int, nonce: str) -> bytes:
    return digest_message(method, target, sha256_hex(body), key, timestamp, nonce)


def digest_message(method: str, target: str, body_sha256: str, key: str, timestamp: int, nonce: str) -> bytes:
    """The signed message given the body's SHA-256 (hex): the store hashes the body as it streams in."""
    body_fields = {
        "v": 1,
        "method": method.upper(),
        "target": target,
        "body_sha256": body_sha256,
        "key": key,
        "timestamp": timestamp,
        "nonce": nonce,
    }
    return domains.REQUEST_V1 + canonical_json(body_fields)


def sign_request(
    signer: Signer, role: str, method: str, target: str, body: bytes, *, now: int, nonce: str | None = None
) -> dict[str, str]:
    """The four auth headers for one attempt of a request."""
    if role not in ("device", "steward"):
        raise ValueError(f"role must be device or steward, not {role!r}")
    key = f"{role}:{signer.kid}"
    nonce = nonce or secrets.token_hex(16)
    signature = signer.sign(request_message(method, target, body, key, now, nonce))
    return {
        KEY_HEADER: key,
        TIMESTAMP_HEADER: str(now),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64encode(signature),
    }
