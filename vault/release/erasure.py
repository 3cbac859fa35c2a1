"""Erasure requests: the agent, signing with the device key, asks the store to delete a subject's data.

Signed message (version 1)::

    b"consentry-erase-v1\\0" || canonical({"v", "request_id", "subject", "device_kid", "created"})

The store accepts it only from the device that submitted the subject's batches; ``request_id`` makes a
retry idempotent (the same receipt comes back).
"""

from __future__ import annotations

from vault.canonical import canonical_json
from vault.release.fields import (
    BatchId,
    EpochSeconds,
    KeyId,
    Signature64,
    Subject,
    Versioned,
    b64decode,
    b64encode,
)
from vault.signing import Signer, verify_signature

ERASURE_DOMAIN = b"consentry-erase-v1\0"


class ErasureRequest(Versioned):
    request_id: BatchId
    subject: Subject
    device_kid: KeyId
    created: EpochSeconds
    signature: Signature64


def erasure_message(request_id: str, subject: str, device_kid: str, created: int) -> bytes:
    body = {
        "v": 1,
        "request_id": request_id,
        "subject": subject,
        "device_kid": device_kid,
        "created": created,
    }
    return ERASURE_DOMAIN + canonical_json(body)


def sign_erasure(device_key: Signer, request_id: str, subject: str, *, created: int) -> ErasureRequest:
    signature = device_key.sign(erasure_message(request_id, subject, device_key.kid, created))
    return ErasureRequest(
        v=1,
        request_id=request_id,
        subject=subject,
        device_kid=device_key.kid,
        created=created,
        signature=b64encode(signature),
    )


def verify_erasure(request: ErasureRequest, device_public_key: bytes) -> None:
    message = erasure_message(request.request_id, request.subject, request.device_kid, request.created)
    verify_signature(device_public_key, message, b64decode(request.signature))
