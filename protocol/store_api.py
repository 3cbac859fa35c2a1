"""HTTP request and response bodies of the store API that are not release wire formats themselves."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

from protocol import domains
from protocol.approval import Approval
from protocol.canonical import canonical_json
from protocol.categories import Category
from protocol.errors import InvalidRecord
from protocol.fields import (
    FROZEN,
    BatchId,
    EpochSeconds,
    KeyId,
    PublicKey32,
    Sha256Hex,
    Signature64,
    Subject,
    b64decode,
)
from protocol.manifest import BatchManifest
from protocol.privacy import PrivacyCheck
from protocol.signing import key_id, verify_signature

BatchState = Literal["review", "approved", "rejected", "stored", "erased", "withdrawn"]


class ErrorDetail(BaseModel):
    model_config = FROZEN
    code: str = Field(description="machine-readable reason, e.g. chain_broken")
    message: str


class ErrorBody(BaseModel):
    model_config = FROZEN
    error: ErrorDetail


class EnrollRequest(BaseModel):
    """A one-time token from IT plus the device's Ed25519 public key and proof that it holds the key."""

    model_config = FROZEN
    token: str = Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    device_kid: KeyId
    public_key: PublicKey32
    proof: Signature64 = Field(description="Ed25519 over enroll_message(token, device_kid, public_key)")


def enroll_token_sha256(token: str) -> str:
    """What the store keeps of an enrollment token, and what the device's proof names instead of it."""
    return hashlib.sha256(domains.ENROLL_TOKEN_V1 + token.encode("utf-8")).hexdigest()


def enroll_message(token_sha256: str, device_kid: str, public_key_b64: str) -> bytes:
    """The message the device signs to enroll, version 1: ``consentry-enroll-v1\\0 || canonical(body)``."""
    body = {"v": 1, "token_sha256": token_sha256, "device_kid": device_kid, "public_key": public_key_b64}
    return domains.ENROLL_V1 + canonical_json(body)


def verify_enrollment(request: EnrollRequest) -> None:
    """``InvalidRecord`` unless the proof verifies under the request's key and the kid is that key's id."""
    public_key = b64decode(request.public_key)
    if request.device_kid != key_id(public_key):
        raise InvalidRecord()
    message = enroll_message(enroll_token_sha256(request.token), request.device_kid, request.public_key)
    verify_signature(public_key, message, b64decode(request.proof))


class StoreInfo(BaseModel):
    """The store's public keys and review rules: what an enrolled agent pins."""

    model_config = FROZEN
    store_public_key: PublicKey32 = Field(description="X25519 key batches are sealed to")
    log_public_key: PublicKey32 = Field(description="Ed25519 key that signs tree heads")
    approvals_required: int
    stewards: dict[str, PublicKey32]


class EnrollResponse(BaseModel):
    model_config = FROZEN
    device_kid: KeyId
    enrolled_at: EpochSeconds
    store: StoreInfo


class BatchStatus(BaseModel):
    """What the device (and the steward) learn about a batch's review: never its records."""

    model_config = FROZEN
    batch_id: BatchId
    state: BatchState
    seq: int
    manifest_sha256: Sha256Hex
    approvals: int = Field(description="approvals that count under the store's steward config")
    approvals_required: int
    rejected_by: tuple[str, ...] = ()
    rejection_reasons: tuple[str, ...] = ()


class QueueItem(BaseModel):
    """A batch in the steward's queue: named by its subject pseudonym, never by the device key that sent it
    (IT's fleet view lists device keys; the two together would say whose employee consented)."""

    model_config = FROZEN
    batch_id: BatchId
    subject: Subject
    seq: int
    submitted_at: EpochSeconds
    period_start: EpochSeconds
    period_end: EpochSeconds
    record_counts: dict[Category, int]
    state: BatchState
    approvals: int
    approvals_required: int


class BatchReview(BaseModel):
    """What a steward sees before deciding: the manifest and its privacy checks, never records."""

    model_config = FROZEN
    status: BatchStatus
    manifest: BatchManifest
    privacy_checks: tuple[PrivacyCheck, ...]
    decisions: tuple[Approval, ...]


class CheckpointAck(BaseModel):
    model_config = FROZEN
    device_kid: KeyId
    seq: int
    head_hash: Sha256Hex
    witnessed_at: EpochSeconds


class Health(BaseModel):
    model_config = FROZEN
    status: Literal["ok"] = "ok"
