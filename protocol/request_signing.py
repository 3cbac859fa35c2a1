"""Signed HTTP requests: how agents and stewards prove which key sends a request (client and server).

Headers: ``Consentry-Key`` (``device:<kid>`` or ``steward:<kid>``), ``Consentry-Timestamp`` (UTC
seconds since the epoch, decimal digits), ``Consentry-Nonce`` (32 lowercase hex, fresh per attempt) and
``Consentry-Signature`` (standard base64 of the 64-byte Ed25519 signature) over, version 1::

    b"consentry-request-v1\\0" || canonical({"v": 1, "method", "target", "body_sha256", "key",
                                             "timestamp", "nonce"})

In the signed JSON ``v`` and ``timestamp`` are JSON integers (the header's digits as a number);
``method`` is the HTTP method in upper case (``"POST"``); ``body_sha256`` is the SHA-256 of the exact
body bytes as 64 lowercase hex (of the empty string for a request without a body); ``key`` and
``nonce`` are the header values as sent. ``target`` is the raw path plus ``?query`` when there is one,
byte for byte as sent. The server refuses a timestamp outside its clock-skew window and a nonce it has seen for that key (nonces are kept for twice the window).
Everything but the signature itself is checked from the headers before the body is read
(``store.gate``); the body's digest and the signature are checked once it has streamed in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from protocol import domains
from protocol.canonical import canonical_json, sha256_hex
from protocol.errors import InvalidRecord
from protocol.fields import b64decode, b64encode
from protocol.signing import Signer, verify_signature

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
    if role not in ("device", "steward", "operator"):
        raise ValueError(f"role must be device, steward or operator, not {role!r}")
    key = f"{role}:{signer.kid}"
    nonce = nonce or secrets.token_hex(16)
    signature = signer.sign(request_message(method, target, body, key, now, nonce))
    return {
        KEY_HEADER: key,
        TIMESTAMP_HEADER: str(now),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: b64encode(signature),
    }


_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def verify_request(public_key: bytes, method: str, target: str, body_sha256: str, headers: Mapping[str, str]) -> None:
    """``InvalidRecord`` unless ``headers`` (lower-case names) sign this request under ``public_key``.

    Checks the signature only: freshness of the timestamp, the nonce and who the key is are the
    server's to judge (``store.auth``).
    """
    try:
        key, timestamp, nonce = headers[KEY_HEADER], headers[TIMESTAMP_HEADER], headers[NONCE_HEADER]
        signature = b64decode(headers[SIGNATURE_HEADER])
    except (KeyError, ValueError):
        raise InvalidRecord() from None
    if not _TIMESTAMP.match(timestamp):
        raise InvalidRecord()
    message = digest_message(method, target, body_sha256, key, int(timestamp), nonce)
    verify_signature(public_key, message, signature)
