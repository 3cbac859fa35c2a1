"""Fleet wire formats: enrollment with a shared enrollment secret, and the device heartbeat.

Enrollment secret (IT delivers it with the machine policy; many devices use it)::

    SecretEnrollRequest {secret, device_kid, public_key, proof}
    proof = Ed25519(device key, enroll_message(secret_sha256(secret), device_kid, public_key))
    secret_sha256 = SHA-256("consentry-enroll-secret-v1\\0" || secret)   # all the store keeps of it

Heartbeat, version 1: the JSON of ``Heartbeat`` padded with spaces in its ``pad`` field to exactly
``HEARTBEAT_BYTES`` bytes, sent as the body of a request signed with the device key (protocol.request_signing),
every ``HEARTBEAT_SECONDS``. Every device sends the same fields, the same length, on the same schedule,
whatever its employee granted: a heartbeat says nothing about consent (docs/privacy/threat-model.md). Fields:

    v                  1 (unknown versions are refused first)
    seq                the device's heartbeat counter (starts at 1 each agent start)
    sent_at            the device's clock, UTC seconds
    agent_version      the agent's version string
    policy_digest      SHA-256 of the machine policy in force ("0"*64: none valid)
    error_class        one of ERROR_CLASSES ("none" when all is well)
    queue_depth        batches and erasure requests whose last delivery to the store failed
    clock_skew_seconds the device clock minus the store's, as the last heartbeat answer measured it
    ledger_head        the consent ledger against its signed head: ok, unanchored, mismatch or unknown
    pad                spaces: makes every heartbeat exactly HEARTBEAT_BYTES long
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from protocol import domains
from protocol.errors import UnsupportedVersion
from protocol.fields import FROZEN, EpochSeconds, KeyId, PublicKey32, Sha256Hex, Signature64

HEARTBEAT_BYTES = 512
HEARTBEAT_SECONDS = 300  # the one fleet-wide schedule; the store calls a device stale after STALE_HEARTBEATS missed
STALE_HEARTBEATS = 3
SECRET_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"

# What the agent can report. Two classes exist only where the employee granted something (a capture
# source ran, or a batch was sealed); the store never shows them per device (CONSENT_REVEALING_ERRORS).
ErrorClass = Literal[
    "none",
    "policy_invalid",
    "vault_unreadable",
    "ledger_mismatch",
    "store_unreachable",
    "store_refused",
    "housekeeping_failed",
    "capture_failed",
    "storage_failed",
]
ERROR_CLASSES: tuple[str, ...] = ErrorClass.__args__  # type: ignore[attr-defined]
CONSENT_REVEALING_ERRORS = frozenset({"capture_failed", "storage_failed", "housekeeping_failed"})
LedgerHead = Literal["ok", "unanchored", "mismatch", "unknown"]
NO_POLICY_DIGEST = "0" * 64


class Heartbeat(BaseModel):
    """One device heartbeat (see the module docstring for the layout)."""

    model_config = FROZEN
    v: int = 1
    seq: int = Field(ge=1, le=10**12)
    sent_at: EpochSeconds
    agent_version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.+_-]+$")
    policy_digest: Sha256Hex
    error_class: ErrorClass
    queue_depth: int = Field(ge=0, le=999_999)
    clock_skew_seconds: int = Field(ge=-(10**9), le=10**9)
    ledger_head: LedgerHead
    pad: str = Field(default="", max_length=HEARTBEAT_BYTES, pattern=r"^ *$")


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    """The heartbeat's bytes, padded to exactly HEARTBEAT_BYTES (same length for every device)."""
    bare = heartbeat.model_copy(update={"pad": ""}).model_dump_json().encode("ascii")
    room = HEARTBEAT_BYTES - len(bare)
    if room < 0:  # the field limits keep every heartbeat far below the size; a bug otherwise
        raise ValueError("heartbeat fields exceed HEARTBEAT_BYTES")
    return heartbeat.model_copy(update={"pad": " " * room}).model_dump_json().encode("ascii")


def decode_heartbeat(body: bytes) -> Heartbeat:
    """The heartbeat in ``body``: ``UnsupportedVersion`` for another version, ``ValueError`` if malformed."""
    if len(body) != HEARTBEAT_BYTES:
        raise ValueError(f"a heartbeat is exactly {HEARTBEAT_BYTES} bytes, not {len(body)}")
    data = json.loads(body)  # ValueError if not JSON
    version = data.get("v") if isinstance(data, dict) else None
    if version != 1:  # the version first, before any other field is looked at
        raise UnsupportedVersion(f"heartbeat version {version!r} is not supported (only 1)")
    return Heartbeat.model_validate(data)


class HeartbeatAck(BaseModel):
    """The store's answer: its clock (for the device's skew) and the schedule; the same for every device."""

    model_config = FROZEN
    store_time: EpochSeconds
    interval_seconds: int


def secret_sha256(secret: str) -> str:
    """What the store keeps of an enrollment secret, and what the device's proof names instead of it."""
    return hashlib.sha256(domains.ENROLL_SECRET_V1 + secret.encode("utf-8")).hexdigest()


class SecretEnrollRequest(BaseModel):
    """A device enrolling its own key with the fleet's enrollment secret (delivered with the machine policy)."""

    model_config = FROZEN
    secret: str = Field(min_length=16, max_length=128, pattern=SECRET_PATTERN)
    device_kid: KeyId
    public_key: PublicKey32
    proof: Signature64 = Field(description="Ed25519 over enroll_message(secret_sha256(secret), device_kid, public_key)")


class FleetDevice(BaseModel):
    """One device as IT's fleet view shows it: health only, never consent, batches or subjects."""

    model_config = FROZEN
    device_kid: KeyId
    label: str
    enrolled_at: EpochSeconds
    retired: bool
    last_seen: EpochSeconds | None
    stale: bool
    agent_version: str | None
    policy_digest: str | None
    policy_drift: bool
    error_class: str | None = Field(description="consent-revealing classes are shown only as fleet aggregates")
    clock_skew_seconds: int | None
    ledger_head: str | None


class FleetCell(BaseModel):
    """A consent or backlog figure over one group of devices; None where the group is under k either way."""

    model_config = FROZEN
    label: str
    devices: int
    shipping_devices: int | None = Field(description="devices that delivered a batch in the period (None: < k)")
    devices_with_backlog: int | None = Field(description="devices reporting a delivery backlog (None: < k)")
    devices_with_capture_errors: int | None = Field(description="None: fewer than k, or fewer than k without")


class FleetReport(BaseModel):
    model_config = FROZEN
    generated_at: EpochSeconds
    min_group_size: int
    expected_policy_digest: str | None
    devices: tuple[FleetDevice, ...]
    cells: tuple[FleetCell, ...]


class EnrollSecretInfo(BaseModel):
    """What IT's listing shows of an enrollment secret (never the secret)."""

    model_config = FROZEN
    secret_id: str
    label: str
    created_at: EpochSeconds
    expires_at: EpochSeconds
    revoked_at: EpochSeconds | None
    per_hour: int
    enrolled: int
