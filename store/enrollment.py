"""Enrollment the fleet way: shared enrollment secrets (scoped, expiring, revocable, rate-limited) and retiring devices.

IT creates a secret for a label (an organisational unit, a site), delivers it with the machine policy,
and each user's agent enrolls its own device key with it on first start. The store keeps only the
secret's hash. A secret stops working when it expires or is revoked; devices already enrolled with it
keep working. At most ``per_hour`` devices enroll with one secret in any hour (a leaked secret cannot
flood the store with devices). Retiring a device refuses all its requests from then on.
The one-time token path (``store.auth.enroll``) stays as it was.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from protocol.errors import InvalidRecord
from protocol.fields import b64decode
from protocol.fleet import EnrollSecretInfo, SecretEnrollRequest, secret_sha256
from protocol.manifest import NO_PREVIOUS_BATCH
from protocol.signing import key_id, verify_signature
from protocol.store_api import enroll_message
from protocol.store_errors import Conflict, Forbidden, NotFound, Unauthenticated, Unavailable, Unprocessable
from store import fleet_db
from store.backend import DeviceRow, StoreBackend

LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,63}$")
SECRET_PREFIX = "ces1_"  # lets IT's tools (and secret scanners) recognise a Consentry enrollment secret
DEFAULT_PER_HOUR = 200


@dataclass(frozen=True)
class NewSecret:
    secret: str
    secret_id: str
    label: str
    expires_at: int
    per_hour: int


def create_secret(backend: StoreBackend, label: str, *, now: int, valid_seconds: int, per_hour: int) -> NewSecret:
    """A new enrollment secret for devices of ``label``; only its hash is stored."""
    if not LABEL_PATTERN.match(label):
        raise ValueError("the label must be 1-64 letters, digits, spaces or . _ / - (starting with a letter or digit)")
    if valid_seconds < 60:
        raise ValueError("a secret must be valid for at least a minute")
    if not 1 <= per_hour <= 100_000:
        raise ValueError("per_hour must be between 1 and 100000")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    secret_id = secrets.token_hex(4)
    row = fleet_db.SecretRow(secret_sha256(secret), secret_id, label, now, now + valid_seconds, None, per_hour)
    with backend.transaction() as tx:
        fleet_db.insert_secret(fleet_db.as_query(tx), row)
    return NewSecret(secret, secret_id, label, row.expires, per_hour)


def list_secrets(backend: StoreBackend) -> list[EnrollSecretInfo]:
    with backend.transaction() as tx:
        rows = fleet_db.list_secrets(fleet_db.as_query(tx))
    return [
        EnrollSecretInfo(
            secret_id=r.secret_id,
            label=r.label,
            created_at=r.created,
            expires_at=r.expires,
            revoked_at=r.revoked_at,
            per_hour=r.per_hour,
            enrolled=count,
        )
        for r, count in rows
    ]


def revoke_secret(backend: StoreBackend, secret_id: str, now: int) -> None:
    """Stop new enrollments with this secret; devices enrolled with it keep working."""
    with backend.transaction() as tx:
        if not fleet_db.revoke_secret(fleet_db.as_query(tx), secret_id, now):
            raise NotFound("unknown_secret", f"no enrollment secret has the id {secret_id}; see: enroll-secret list")


def retire_device(backend: StoreBackend, device_kid: str, now: int) -> None:
    """Refuse every request of this device from now on (its uploads get ``device_retired``)."""
    with backend.transaction() as tx:
        if tx.get_device(device_kid) is None:
            raise NotFound("unknown_device", f"no enrolled device has the key id {device_kid}; see: store fleet")
        fleet_db.retire(fleet_db.as_query(tx), device_kid, now)


def check_not_retired(tx: object, device_kid: str) -> None:
    """``Forbidden("device_retired")`` if IT retired this device (called for every device request)."""
    if fleet_db.retired_at(fleet_db.as_query(tx), device_kid) is not None:
        raise Forbidden(
            "device_retired",
            "IT retired this computer's device key on the store, so nothing more is accepted from it. "
            "If this is a mistake, ask IT to enroll this computer again.",
        )


def enroll_with_secret(backend: StoreBackend, request: SecretEnrollRequest, now: int) -> DeviceRow:
    """Register the device key if the secret is current and under its hourly limit, and the device holds the key."""
    public_key = b64decode(request.public_key)
    digest = secret_sha256(request.secret)
    try:
        verify_signature(
            public_key, enroll_message(digest, request.device_kid, request.public_key), b64decode(request.proof)
        )
    except InvalidRecord:
        raise Unauthenticated(
            "auth_bad_signature", "the enrollment proof does not verify under the given key"
        ) from None
    if request.device_kid != key_id(public_key):
        raise Unprocessable("malformed_request", "device_kid must be the key id of public_key")
    with backend.transaction() as tx:
        q = fleet_db.as_query(tx)
        # The row lock orders enrollments under one secret, so the hourly count cannot be overrun.
        secret = fleet_db.secret_by_hash(q, digest, lock_clause=getattr(tx, "for_update", ""))
        existing = tx.get_device(request.device_kid, lock=True)
        if existing is not None:
            if existing.public_key == public_key:
                check_not_retired(tx, existing.kid)
                return existing  # the same device again (its first answer was lost): nothing changes
            raise Conflict("key_taken", "this device kid is already enrolled; a device enrolls once")
        if secret is None or secret.revoked_at is not None or secret.expires <= now:
            raise Forbidden(
                "secret_invalid",
                "the enrollment secret is unknown, revoked or expired; IT must deliver a current one with the policy",
            )
        if fleet_db.enrollments_since(q, secret.secret_id, now - 3600) >= secret.per_hour:
            raise Unavailable(
                "enroll_rate_limited",
                f"this enrollment secret allows {secret.per_hour} new devices an hour; the agent tries again later",
            )
        device = DeviceRow(request.device_kid, public_key, now, 0, NO_PREVIOUS_BATCH, None, None)
        if not tx.insert_device(device):
            raise Conflict("key_taken", "this device key is already enrolled under another kid")
        fleet_db.insert_enrollment(q, device.kid, secret.secret_id, secret.label, now)
    return device
