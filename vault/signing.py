"""Ed25519 signing keys (the device key) and signature checks; every signature has a domain prefix."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.errors import InvalidRecord

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def key_id(public_bytes: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_bytes).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key. Its raw bytes never leave this object except via ``private_bytes``."""

    def __init__(self, private_bytes: bytes) -> None:
        if len(private_bytes) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(private_bytes)
        self._private = private_bytes
        self.public_bytes = self._key.public_key().public_bytes_raw()
        self.kid = key_id(self.public_bytes)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    def private_bytes(self) -> bytes:
        return self._private

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:  # never show key material
        return f"SigningKey(kid={self.kid!r})"


def verify_signature(public_bytes: bytes, signature: bytes, data: bytes) -> None:
    """Raise the opaque ``InvalidRecord`` unless ``signature`` is valid for ``data``."""
    if len(public_bytes) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise InvalidRecord("signature failed to verify")
    try:
        Ed25519PublicKey.from_public_bytes(public_bytes).verify(signature, data)
    except (InvalidSignature, ValueError):
        raise InvalidRecord("signature failed to verify") from None
