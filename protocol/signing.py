"""Ed25519 keys and signatures for the whole project: device, steward and store log keys.

Every signed message is ``domain-separation prefix || canonical JSON`` built by the caller; this
module only signs and verifies bytes. A bad signature, a wrong-length key or a key that is not a curve
point all raise the same opaque ``InvalidRecord``.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.errors import InvalidRecord

KEY_BYTES = 32
SIGNATURE_BYTES = 64


def key_id(public_bytes: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    if len(public_bytes) != KEY_BYTES:
        raise ValueError(f"a public key is {KEY_BYTES} bytes, got {len(public_bytes)}")
    return hashlib.sha256(public_bytes).hexdigest()[:16]


@runtime_checkable
class Signer(Protocol):
    """What signing code needs from a key; ``SigningKey`` is one, a test double may be another."""

    @property
    def kid(self) -> str: ...

    @property
    def public_bytes(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


class SigningKey:
    """An Ed25519 private key held in memory. Its raw bytes leave only through ``private_bytes``."""

    def __init__(self, private_bytes: bytes) -> None:
        if len(private_bytes) != KEY_BYTES:
            raise ValueError(f"an Ed25519 private key is {KEY_BYTES} bytes, got {len(private_bytes)}")
        self._key = Ed25519PrivateKey.from_private_bytes(private_bytes)
        self._public = self._key.public_key().public_bytes_raw()
        self._kid = key_id(self._public)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def private_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(kid={self._kid!r})"


def verify_signature(public_bytes: bytes, message: bytes, signature: bytes) -> None:
    """Raise the opaque ``InvalidRecord`` unless ``signature`` is a valid signature of ``message``."""
    if len(public_bytes) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise InvalidRecord()
    try:
        Ed25519PublicKey.from_public_bytes(public_bytes).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise InvalidRecord() from None


def is_valid_signature(public_bytes: bytes, message: bytes, signature: bytes) -> bool:
    try:
        verify_signature(public_bytes, message, signature)
    except InvalidRecord:
        return False
    return True
