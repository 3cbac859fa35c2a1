"""Who is asking: enrollment with one-time tokens, and checking signed requests from devices and stewards."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from protocol.canonical import sha256_hex
from protocol.errors import InvalidRecord
from protocol.fields import b64decode
from protocol.manifest import NO_PREVIOUS_BATCH
from protocol.request_signing import KEY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, digest_message
from protocol.signing import key_id, verify_signature
from protocol.store_api import EnrollRequest, enroll_message, enroll_token_sha256
from protocol.store_errors import Conflict, Forbidden, Unauthenticated, Unprocessable
from store import fleet_db
from store.backend import DeviceRow, StoreBackend
from store.enrollment import check_not_retired
from store.settings import StoreClock, StoreSettings

Role = Literal["device", "steward", "operator"]
_KEY = re.compile(r"^(device|steward|operator):([A-Za-z0-9_-]{8,64})$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{86}==$")  # 64 bytes, standard base64


@dataclass(frozen=True)
class AuthHeaders:
    """The four ``Consentry-*`` headers of a request, as received (any may be missing)."""

    key: str | None
    timestamp: str | None
    nonce: str | None
    signature: str | None

    @classmethod
    def from_asgi(cls, headers: Iterable[tuple[bytes, bytes]]) -> AuthHeaders:
        found: dict[bytes, str] = {}
        for name, value in headers:
            if name.lower() in _HEADER_NAMES:
                found[name.lower()] = value.decode("latin-1")
        return cls(*(found.get(name) for name in _HEADER_NAMES))


_HEADER_NAMES = tuple(h.encode("ascii") for h in (KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))


@dataclass(frozen=True)
class Principal:
    role: Role
    kid: str
    public_key: bytes
    name: str  # the steward's name in the store's config, or the device kid


def token_hash(token: str) -> str:
    return enroll_token_sha256(token)


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
        device = DeviceRow(request.device_kid, public_key, now, 0, NO_PREVIOUS_BATCH, None, None)
        if not tx.insert_device(device):
            raise Conflict("key_taken", "this device key is already enrolled under another kid")
    return device


class Authenticator:
    """Checks signed requests in two steps, so nobody unknown gets the store to read a body.

    ``identify`` uses only the headers (``claim``: well-formed, role allowed here, timestamp fresh;
    ``principal``: key known);
    ``verify`` checks the signature over the body's digest once the body has streamed in, then
    records the nonce.
    """

    def __init__(self, backend: StoreBackend, settings: StoreSettings, clock: StoreClock) -> None:
        self._backend = backend
        self._settings = settings
        self._clock = clock
        # Steward keys come from the store's own config, never from a request.
        self._stewards = {
            key_id(b64decode(pub)): (name, b64decode(pub)) for name, pub in settings.stewards.keys.items()
        }

    def identify(self, headers: AuthHeaders, roles: tuple[Role, ...]) -> Principal:
        """The principal the headers claim, if it may use this endpoint; no body needed."""
        return self.principal(*self.claim(headers, roles))

    def claim(self, headers: AuthHeaders, roles: tuple[Role, ...]) -> tuple[Role, str]:
        """(role, kid) the headers claim, checked without I/O: well-formed, role allowed, timestamp fresh."""
        if not (headers.key and headers.timestamp and headers.nonce and headers.signature):
            raise Unauthenticated("auth_missing", "this endpoint needs a signed request (Consentry-* headers)")
        match = _KEY.match(headers.key)
        if (
            match is None
            or not _NONCE.match(headers.nonce)
            or not _TIMESTAMP.match(headers.timestamp)
            or not _SIGNATURE.match(headers.signature)
        ):
            raise Unauthenticated("auth_missing", "malformed Consentry-Key, -Timestamp, -Nonce or -Signature header")
        claimed_role, kid = match.group(1), match.group(2)
        if claimed_role not in roles:
            wanted = " or ".join(f"{r}s" for r in roles)
            raise Forbidden(
                "not_a_steward" if roles == ("steward",) else "device_mismatch", f"this endpoint is for {wanted}"
            )
        if abs(self._clock.now() - int(headers.timestamp)) > self._settings.clock_skew_seconds:
            raise Unauthenticated("auth_stale", "the request timestamp is outside the allowed clock skew")
        return claimed_role, kid  # the regex allows only the two roles

    def verify(self, principal: Principal, headers: AuthHeaders, method: str, target: str, body_sha256: str) -> None:
        """The signature over (method, target, body digest, headers); then the nonce is spent."""
        if not (headers.key and headers.timestamp and headers.nonce and headers.signature):
            raise Unauthenticated("auth_missing", "this endpoint needs a signed request (Consentry-* headers)")
        timestamp = int(headers.timestamp)
        message = digest_message(method, target, body_sha256, headers.key, timestamp, headers.nonce)
        try:
            verify_signature(principal.public_key, message, b64decode(headers.signature))
        except (InvalidRecord, ValueError):
            raise Unauthenticated("auth_bad_signature", "the request signature does not verify") from None
        # The nonce is recorded only for validly signed requests, so nobody can burn another key's nonces.
        now = self._clock.now()
        with self._backend.transaction() as tx:
            fresh = tx.use_nonce(headers.key, headers.nonce, now, now - 2 * self._settings.clock_skew_seconds)
        if not fresh:
            raise Unauthenticated("auth_replayed", "this request was already received (replayed nonce)")

    def authenticate(
        self, headers: AuthHeaders, roles: tuple[Role, ...], method: str, target: str, body: bytes
    ) -> Principal:
        """Both steps at once, for a request whose body is already in hand."""
        principal = self.identify(headers, roles)
        self.verify(principal, headers, method, target, sha256_hex(body))
        return principal

    def principal(self, role: Role, kid: str) -> Principal:
        """The enrolled device or configured steward behind ``kid`` (devices: a database lookup)."""
        if role == "steward":
            if kid not in self._stewards:
                raise Forbidden("not_a_steward", "this key is not a steward key in the store's configuration")
            name, public = self._stewards[kid]
            return Principal("steward", kid, public, name)
        if role == "operator":  # IT's fleet-view keys, added with `consentry store operator add` (store.fleet_db)
            with self._backend.transaction() as tx:
                found = fleet_db.operator(fleet_db.as_query(tx), kid)
            if found is None:
                raise Forbidden("not_an_operator", "this key is not an operator key of this store")
            return Principal("operator", kid, b64decode(found[1]), found[0])
        with self._backend.transaction() as tx:
            device = tx.get_device(kid)
            if device is not None:
                check_not_retired(tx, kid)
        if device is None:
            raise Unauthenticated("unknown_key", "this device is not enrolled; run: consentry enroll")
        return Principal("device", kid, device.public_key, kid)
