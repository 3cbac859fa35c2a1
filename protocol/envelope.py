"""Authenticated encryption of vault blobs (records, wrapped keys, secrets): the only AES-GCM user.

Blob format, version 1 (all integers big-endian)::

    offset  size  field
    0       1     version = 0x01
    1       12    nonce (random, 96 bits)
    13      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then the 16-byte tag

    associated data = b"consentry-blob\\x00" || canonical_json({"v": 1, **context})

``context`` names what the blob is and where it lives. For a record it is
``{"table", "record_id", "key_id", "category"}``; for a wrapped data key ``{"purpose": "dek", "key_id"}``;
for a secret ``{"purpose": "secret", "name"}``. A blob moved to another row, relabelled or decrypted
under another context fails to authenticate. The version byte is checked before anything else and is
also inside the associated data, so it cannot be changed either. Every authentication failure raises
the same opaque ``InvalidRecord``; misuse (wrong key length, unknown version) raises precisely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.canonical import canonical_json
from protocol.errors import InvalidRecord, UnsupportedVersion

BLOB_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER_BYTES = 1 + NONCE_BYTES
_AAD_DOMAIN = b"consentry-blob\x00"
_VERSION_BYTE = bytes([BLOB_VERSION])


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def associated_data(context: Mapping[str, object], version: int = BLOB_VERSION) -> bytes:
    if "v" in context:
        raise ValueError("context must not contain 'v'; the version is added here")
    return _AAD_DOMAIN + canonical_json({"v": version, **context})


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes")


def seal(key: bytes, plaintext: bytes, context: Mapping[str, object], *, nonce: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` under ``key``, bound to ``context``. ``nonce`` is for test vectors only."""
    _check_key(key)
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    elif len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, associated_data(context))
    return bytes([BLOB_VERSION]) + nonce + ciphertext


def blob_version(blob: bytes) -> int:
    if len(blob) < 1:
        raise InvalidRecord()
    return blob[0]


def open_blob(key: bytes, blob: bytes, context: Mapping[str, object]) -> bytes:
    """Decrypt a blob made by ``seal`` under the same key and context, or raise ``InvalidRecord``."""
    _check_key(key)
    version = blob_version(blob)
    if version > BLOB_VERSION:
        raise UnsupportedVersion(f"blob format version {version} is newer than this Consentry understands")
    if version != BLOB_VERSION or len(blob) < _HEADER_BYTES + TAG_BYTES:
        raise InvalidRecord()
    nonce = blob[1:_HEADER_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[_HEADER_BYTES:], associated_data(context, version))
    except InvalidTag:
        raise InvalidRecord() from None


def record_context(table: str, record_id: int, key_id: str, category: str) -> dict[str, object]:
    return {"table": table, "record_id": record_id, "key_id": key_id, "category": category}


def record_associated_data(table: str, record_id: int, key_id: str, category: str) -> bytes:
    """``associated_data(record_context(...))`` without the generic canonicaliser."""
    return RecordAad(table, key_id, category).for_record(record_id)


class RecordAad:
    """Associated data for many records under one key, built by splicing in the record id.

    Equal byte for byte to the generic form (a test checks it): the keys are written in RFC 8785
    order and json.dumps escapes ASCII strings exactly as RFC 8785 does.
    """

    def __init__(self, table: str, key_id: str, category: str) -> None:
        self._prefix = b'%s{"category":%s,"key_id":%s,"record_id":' % (
            _AAD_DOMAIN,
            json.dumps(category).encode(),
            json.dumps(key_id).encode(),
        )
        self._suffix = b',"table":%s,"v":%d}' % (json.dumps(table).encode(), BLOB_VERSION)

    def for_record(self, record_id: int) -> bytes:
        return b"%s%d%s" % (self._prefix, record_id, self._suffix)


class BlobCipher:
    """One key bound to AES-GCM, to seal and open many blobs without re-creating the cipher."""

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _VERSION_BYTE + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_many(self, items: list[tuple[bytes, bytes]]) -> list[bytes]:
        """``seal`` for many (plaintext, aad) pairs; the random nonces come from one os.urandom call."""
        nonces = os.urandom(NONCE_BYTES * len(items))
        encrypt = self._aead.encrypt
        out = []
        for i, (plaintext, aad) in enumerate(items):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            out.append(_VERSION_BYTE + nonce + encrypt(nonce, plaintext, aad))
        return out

    def open(self, blob: bytes, aad: bytes) -> bytes:
        version = blob_version(blob)
        if version > BLOB_VERSION:
            raise UnsupportedVersion(f"blob format version {version} is newer than this Consentry understands")
        if version != BLOB_VERSION or len(blob) < _HEADER_BYTES + TAG_BYTES:
            raise InvalidRecord()
        try:
            return self._aead.decrypt(blob[1:_HEADER_BYTES], blob[_HEADER_BYTES:], aad)
        except InvalidTag:
            raise InvalidRecord() from None


def wrap_context(key_id: str) -> dict[str, object]:
    return {"purpose": "dek", "key_id": key_id}


def secret_context(name: str) -> dict[str, object]:
    return {"purpose": "secret", "name": name}


def kek_check_context(vault_id: str) -> dict[str, object]:
    return {"purpose": "kek-check", "vault_id": vault_id}
