"""Erasure requests and their receipts: the device asks the store to delete a subject; the store proves it did.

Request, signed by the device key (version 1)::

    b"consentry-erase-v1\\0" || canonical({"v", "request_id", "subject", "device_kid", "created"})

The store accepts it only from the device that submitted the subject's batches; ``request_id`` makes a
retry idempotent (the same receipt comes back). A version-1 request asks for scope ``subject``:
everything the store holds under that pseudonym.

Receipt, signed by the store's log key (Ed25519, the key that signs tree heads), version 1::

    b"consentry-erasure-receipt-v1\\0" || canonical({"v": 1, "request_id", "subject_digest", "scope",
                                                      "leaf_index"})

It travels with the audit-log receipt of the ``erasure`` entry (``log``: entry, signed tree head,
inclusion path). ``verify_erasure_receipt`` checks that every bound field is the request's own, the
signature, that the log entry at ``leaf_index`` names the same request, subject and scope, and the
inclusion proof against the signed tree head. Any failure is the opaque ``InvalidRecord`` (never saying which
check); a receipt for another request (a replay) is refused like a forged one, so the agent keeps retrying.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol import domains
from protocol.auditlog import LogReceipt, subject_digest, verify_receipt
from protocol.canonical import canonical_json
from protocol.errors import InvalidRecord
from protocol.fields import (
    BatchId,
    EpochSeconds,
    KeyId,
    Sha256Hex,
    Signature64,
    Subject,
    Versioned,
    b64decode,
    b64encode,
)
from protocol.signing import Signer, verify_signature

# What a version-1 request asks for: everything held under its subject pseudonym.
ErasureScope = Literal["subject"]
REQUEST_SCOPE: ErasureScope = "subject"


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
    return domains.ERASE_V1 + canonical_json(body)


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


class ErasureReceipt(Versioned):
    """The store's signed statement that it carried out one erasure request, with its audit-log proof."""

    request_id: BatchId
    subject_digest: Sha256Hex
    scope: ErasureScope
    leaf_index: int = Field(ge=0)
    signature: Signature64 = Field(description="store log key, Ed25519, over erasure_receipt_message(...)")
    log: LogReceipt


def erasure_receipt_message(request_id: str, subject_sha256: str, scope: str, leaf_index: int) -> bytes:
    body = {
        "v": 1,
        "request_id": request_id,
        "subject_digest": subject_sha256,
        "scope": scope,
        "leaf_index": leaf_index,
    }
    return domains.ERASURE_RECEIPT_V1 + canonical_json(body)


def sign_erasure_receipt(log_key: Signer, request: ErasureRequest, log: LogReceipt) -> ErasureReceipt:
    """The store's receipt for ``request``, whose ``erasure`` entry ``log`` proves is in the audit log."""
    digest = subject_digest(request.subject)
    message = erasure_receipt_message(request.request_id, digest, REQUEST_SCOPE, log.leaf_index)
    return ErasureReceipt(
        v=1,
        request_id=request.request_id,
        subject_digest=digest,
        scope=REQUEST_SCOPE,
        leaf_index=log.leaf_index,
        signature=b64encode(log_key.sign(message)),
        log=log,
    )


def verify_erasure_receipt(receipt: ErasureReceipt, request: ErasureRequest, log_public_key: bytes) -> None:
    """``InvalidRecord`` unless the store's log key bound ``receipt`` to ``request`` and logged it provably."""
    digest = subject_digest(request.subject)
    if receipt.request_id != request.request_id:
        raise InvalidRecord()  # the receipt is for another request
    if receipt.subject_digest != digest or receipt.scope != REQUEST_SCOPE:
        raise InvalidRecord()  # the receipt is for another subject or scope
    message = erasure_receipt_message(receipt.request_id, receipt.subject_digest, receipt.scope, receipt.leaf_index)
    verify_signature(log_public_key, message, b64decode(receipt.signature))
    entry = receipt.log.entry
    body = entry.body
    if (
        receipt.log.leaf_index != receipt.leaf_index
        or entry.kind != "erasure"
        or body.get("request_id") != request.request_id
        or body.get("subject_digest") != digest
        or body.get("scope", REQUEST_SCOPE) != REQUEST_SCOPE  # entries logged before scopes were named
    ):
        raise InvalidRecord()  # the receipt's log entry is not this request's
    verify_receipt(receipt.log, log_public_key)  # tree head signature and inclusion proof
