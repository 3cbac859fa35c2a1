"""Who is asking: enrollment with one-time tokens, and checking signed requests from devices and stewards."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from vault.errors import InvalidRecord
from vault.release.fields import GENESIS_HASH, b64decode
from vault.signing import key_id, verify_signature
from vault.store.backend import DeviceRow, StoreBackend
from vault.store.errors import Conflict, Forbidden, Unauthenticated, Unprocessable
from vault.store.models import EnrollRequest, enroll_message
from vault.store.request_signing import request_message
from vault.store.settings import Clock, StoreSettings

Role = Literal["device", "steward"]
_KEY = re.compile(r"^(device|steward):([A-Za-z0-9_-]{8,64})$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that its signature covers, as the app received them."""

    method: str
    target: str
    body: bytes
    key: str | None
    timestamp: str | None
    nonce: str | None
    signature: str | None


@dataclass(frozen=True)
class Principal:
    role: Role
    kid: str
    public_key: bytes
    name: str  # the steward's name in the store's config, or the device kid


def token_hash(token: str) -> str:
    return hashlib.sha256(b"consentry-enroll-token-v1\0" + token.encode("utf-8")).hexdigest()


def issue_token(backend: StoreBackend, settings: StoreSettings, now: int) -> str:
    """Make a one-time enrollment token for IT to hand to one workstation; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    with backend.transaction() as tx:
        tx.insert_token(token_hash(token), now, now + settings.token_ttl_seconds)
    return token


def enroll(backend: StoreBackend, request: EnrollRequest, now: int) -> DeviceRow:
    """Register the device key if the token is valid and unused and the device proves it holds the key."""
    public_key = b64decode(request.public_key)
    digest = token_hash(request.token)
    try:
        verify_signature(
            public_key,
            enroll_message(digest, request.device_kid, request.public_key),
            b64decode(request.proof),
        )
    except InvalidRecord:
        raise Unauthenticated(
            "auth_bad_signature", "the enrollment proof does not verify under the given key"
        ) from None
    if request.device_kid != key_id(public_key):
        raise Unprocessable("malformed_request", "device_kid must be the key id of public_key")
    with backend.transaction() as tx:
        existing = tx.get_device(request.device_kid, lock=True)
        if existing is not None:
            if existing.public_key == public_key:
                return existing  # the same device again (its first answer was lost): nothing changes
            raise Conflict("key_taken", "this device kid is already enrolled; a device enrolls once")
        if not tx.consume_token(digest, request.device_kid, now):
            raise Forbidden("token_invalid", "the enrollment token is unknown, used or expired; ask IT for a new one")
        device = DeviceRow(request.device_kid, public_key, now, 0, GENESIS_HASH, None, None)
        if not tx.insert_device(device):
            raise Conflict("key_taken", "this device key is already enrolled under another kid")
    return device


class Authenticator:
    """Checks a ``SignedRequest``: known key of the right role, fresh timestamp, unseen nonce, signature."""

    def __init__(self, backend: StoreBackend, settings: StoreSettings, clock: Clock) -> None:
        self._backend = backend
        self._settings = settings
        self._clock = clock
        # Steward keys come from the store's own config, never from a request.
        self._stewards = {
            key_id(b64decode(pub)): (name, b64decode(pub)) for name, pub in settings.stewards.keys.items()
        }

    def authenticate(self, request: SignedRequest, role: Role) -> Principal:
        if not (request.key and request.timestamp and request.nonce and request.signature):
            raise Unauthenticated("auth_missing", "this endpoint needs a signed request (Consentry-* headers)")
        match = _KEY.match(request.key)
        if match is None or not _NONCE.match(request.nonce) or not request.timestamp.isdigit():
            raise Unauthenticated("auth_missing", "malformed Consentry-Key, -Nonce or -Timestamp header")
        claimed_role, kid = match.group(1), match.group(2)
        if claimed_role != role:
            raise Forbidden(
                "not_a_steward" if role == "steward" else "device_mismatch", f"this endpoint is for {role}s"
            )
        timestamp = int(request.timestamp)
        now = self._clock.now()
        if abs(now - timestamp) > self._settings.clock_skew_seconds:
            raise Unauthenticated("auth_stale", "the request timestamp is outside the allowed clock skew")
        principal = self._principal(role, kid)
        try:
            signature = b64decode(request.signature)
        except ValueError:
            raise Unauthenticated("auth_bad_signature", "the request signature is not base64") from None
        message = request_message(request.method, request.target, request.body, request.key, timestamp, request.nonce)
        try:
            verify_signature(principal.public_key, message, signature)
        except InvalidRecord:
            raise Unauthenticated("auth_bad_signature", "the request signature does not verify") from None
        # The nonce is recorded only for validly signed requests, so nobody can burn another key's nonces.
        with self._backend.transaction() as tx:
            fresh = tx.use_nonce(request.key, request.nonce, now, now - 2 * self._settings.clock_skew_seconds)
        if not fresh:
            raise Unauthenticated("auth_replayed", "this request was already received (replayed nonce)")
        return principal

    def _principal(self, role: Role, kid: str) -> Principal:
        if role == "steward":
            if kid not in self._stewards:
                raise Forbidden("not_a_steward", "this key is not a steward key in the store's configuration")
            name, public = self._stewards[kid]
            return Principal("steward", kid, public, name)
        with self._backend.transaction() as tx:
            device = tx.get_device(kid)
        if device is None:
            raise Unauthenticated("unknown_key", "this device is not enrolled; run: consentry enroll")
        return Principal("device", kid, device.public_key, kid)
