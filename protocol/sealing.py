"""Sealing a batch payload to the store (HPKE) under the device's signature, and opening it in the store.

Sealed bytes, version 1::

    0x01 || enc (32 bytes, X25519 ephemeral public key) || AES-256-GCM ciphertext+tag

produced by ``hpke.Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM).encrypt(payload, store_public,
info=canonical(header))``: RFC 9180 base mode (no PSK, no sender key), suite ids KEM 0x0020, KDF 0x0001,
AEAD 0x0002, one single-shot message (sequence number 0) with **empty** associated data (``aad`` = b""),
``enc`` the raw 32-byte ephemeral X25519 public key. Binding the header as ``info`` means an edited or
re-signed header no longer decrypts. ``hpke_seal``/``hpke_open`` are that HPKE step alone (no version
byte), so RFC 9180's published vectors and other HPKE libraries can be checked against it.

Signed message::

    b"consentry-batch-v1\\0" || canonical(header) || SHA-256(sealed bytes)   (raw 32-byte digest)

``open_batch`` checks, in order: the sealed version byte, the device signature, then decrypts with the
header as ``info``. Every failure after the version check is the same opaque ``InvalidRecord``.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from protocol import domains
from protocol.batch import BatchHeader, SealedBatch
from protocol.errors import InvalidRecord, UnsupportedVersion
from protocol.fields import b64decode, b64encode
from protocol.signing import Signer, verify_signature

SEALED_VERSION = 1
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_ENC_BYTES = 32


class StoreSealKey:
    """The store's X25519 private key, which opens sealed batches."""

    def __init__(self, private_bytes: bytes) -> None:
        if len(private_bytes) != 32:
            raise ValueError(f"an X25519 private key is 32 bytes, got {len(private_bytes)}")
        self._key = X25519PrivateKey.from_private_bytes(private_bytes)

    @classmethod
    def generate(cls) -> StoreSealKey:
        return cls(
            X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        )

    @property
    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def hpke_open(self, enc_and_ciphertext: bytes, info: bytes) -> bytes:
        """RFC 9180 base-mode single-shot Open (sequence 0, empty aad) of ``enc || ciphertext``."""
        try:
            return _SUITE.decrypt(enc_and_ciphertext, self._key, info=info)
        except (InvalidTag, ValueError):
            raise InvalidRecord() from None

    def __repr__(self) -> str:  # never show key material
        return "StoreSealKey(<private>)"


def hpke_seal(store_public_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """RFC 9180 base-mode single-shot Seal to ``store_public_key`` (empty aad): ``enc (32) || ciphertext+tag``."""
    if len(store_public_key) != 32:
        raise ValueError(f"the store public key is 32 bytes, got {len(store_public_key)}")
    try:
        recipient = X25519PublicKey.from_public_bytes(store_public_key)
    except ValueError:
        raise ValueError("the store public key is not a valid X25519 key") from None
    return _SUITE.encrypt(plaintext, recipient, info=info)


def hpke_open(store_key: StoreSealKey, enc_and_ciphertext: bytes, info: bytes) -> bytes:
    """The plaintext of ``hpke_seal``'s output, or the opaque ``InvalidRecord``."""
    return store_key.hpke_open(enc_and_ciphertext, info)


def open_sealed(sealed: bytes, header: BatchHeader, store_key: StoreSealKey) -> bytes:
    """Decrypt version-1 sealed bytes (``0x01 || enc || ciphertext``) with ``header`` as ``info``.

    Checks the version byte first (``UnsupportedVersion``); does not check the device signature.
    """
    if not sealed:
        raise InvalidRecord()
    if sealed[0] != SEALED_VERSION:
        raise UnsupportedVersion(f"sealed batch version {sealed[0]} is not supported (only {SEALED_VERSION})")
    return store_key.hpke_open(sealed[1:], header.canonical_bytes())


def batch_signature_message(header: BatchHeader, sealed: bytes) -> bytes:
    return domains.BATCH_V1 + header.canonical_bytes() + hashlib.sha256(sealed).digest()


def seal_batch(header: BatchHeader, payload: bytes, store_public_key: bytes, device_key: Signer) -> SealedBatch:
    """Encrypt ``payload`` to the store and sign it with the device key.

    ``device_key.kid`` must be the header's ``device_kid`` (a ValueError otherwise: a batch signed by
    another key would be rejected by the store anyway).
    """
    if len(store_public_key) != 32:
        raise ValueError(f"the store public key is 32 bytes, got {len(store_public_key)}")
    if device_key.kid != header.device_kid:
        raise ValueError("the header's device_kid is not the signing key's kid")
    sealed = bytes([SEALED_VERSION]) + hpke_seal(store_public_key, payload, header.canonical_bytes())
    signature = device_key.sign(batch_signature_message(header, sealed))
    return SealedBatch(v=1, header=header, sealed=b64encode(sealed), signature=b64encode(signature))


def verify_batch_signature(batch: SealedBatch, device_public_key: bytes) -> bytes:
    """Check the sealed version and the device signature; return the sealed bytes. Does not decrypt."""
    try:
        sealed = b64decode(batch.sealed)
        signature = b64decode(batch.signature)
    except ValueError:
        raise InvalidRecord() from None
    if not sealed:
        raise InvalidRecord()
    if sealed[0] != SEALED_VERSION:
        raise UnsupportedVersion(f"sealed batch version {sealed[0]} is not supported (only {SEALED_VERSION})")
    if len(sealed) < 1 + _ENC_BYTES + 16:
        raise InvalidRecord()
    verify_signature(device_public_key, batch_signature_message(batch.header, sealed), signature)
    return sealed


def open_batch(batch: SealedBatch, store_key: StoreSealKey, device_public_key: bytes) -> bytes:
    """Verify the device signature, then decrypt with the header as HPKE ``info``; return the payload."""
    sealed = verify_batch_signature(batch, device_public_key)
    return open_sealed(sealed, batch.header, store_key)
