"""Authenticated encryption of blobs (records, wrapped keys, secrets): the only AES-GCM user.

Blob format, version 1 (all integers big-endian)::

    offset  size  field
    0       1     version = 0x01
    1       12    nonce (random, 96 bits)
    13      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then the 16-byte tag

    associated data = b"consentry-blob\\x00" || canonical_json({"v": 1, **fields})

A ``Context`` is that associated data: it names what the blob is and where it lives, and is only
made here (``context``, ``record_context``, ``wrap_context``, ``secret_context``, ``kek_check_context``,
or a ``ContextTemplate`` for many records). A blob moved to another row, relabelled or decrypted under
another context fails to authenticate. The version byte is checked before anything else and is also
inside the associated data, so it cannot be changed either. Every authentication failure raises the
same opaque ``InvalidRecord``; misuse (wrong key length) raises ``ValueError``, a newer version
``UnsupportedVersion``. Nonces are always fresh from ``os.urandom``: no caller can choose one.

API: ``seal(key, plaintext, context)`` and ``open_blob(key, blob, context)`` for one blob;
``Envelope(key)`` binds a key once to ``seal``, ``seal_many`` and ``open`` many blobs;
``open_vault_record`` opens one record of a vault file from the KEK, its wrapped data key and its row.

The context is built from JSON values: ``record_id`` is a JSON integer (the SQLite rowid, e.g.
``"record_id":7``), never a string; every other field is a string.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import NewType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol.canonical import canonical_json
from protocol.domains import BLOB_V1
from protocol.errors import InvalidRecord, UnsupportedVersion

BLOB_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER_BYTES = 1 + NONCE_BYTES
_VERSION_BYTE = bytes([BLOB_VERSION])

Context = NewType("Context", bytes)
"""The associated data a blob is bound to; build it with the functions below, never by hand."""


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def context(fields: Mapping[str, object]) -> Context:
    """The context for ``fields`` (JSON values; ``v`` is reserved for the format version)."""
    if "v" in fields:
        raise ValueError("context fields must not contain 'v'; the version is added here")
    return Context(BLOB_V1 + canonical_json({"v": BLOB_VERSION, **fields}))


class ContextTemplate:
    """Contexts that differ only in one integer field, built by splicing it in (records written in bulk).

    The bytes around the integer come from ``context`` itself, so a spliced context equals
    ``context({**fields, name: value})`` byte for byte (a test checks it anyway).
    """

    __slots__ = ("_format",)

    def __init__(self, fields: Mapping[str, object], name: str) -> None:
        whole = context({**fields, name: 0})
        marker = canonical_json({name: 0})[1:-1]  # b'"name":0'
        if whole.count(marker) != 1:
            raise ValueError(f"cannot splice {name!r} into this context")
        head, tail = (part.replace(b"%", b"%%") for part in whole.split(marker))
        self._format = head + marker[:-1] + b"%d" + tail

    def __call__(self, value: int) -> Context:
        # Context(...) is the identity at run time; skipping the call keeps bulk sealing at one % per record.
        return self._format % value  # type: ignore[return-value]


@functools.lru_cache(maxsize=1024)
def record_contexts(table: str, key_id: str, category: str) -> ContextTemplate:
    """Contexts of the records of one table sealed under one data key, by record id."""
    return ContextTemplate({"table": table, "key_id": key_id, "category": category}, "record_id")


def record_context(table: str, record_id: int, key_id: str, category: str) -> Context:
    return record_contexts(table, key_id, category)(record_id)


def wrap_context(key_id: str) -> Context:
    return context({"purpose": "dek", "key_id": key_id})


def secret_context(name: str) -> Context:
    return context({"purpose": "secret", "name": name})


def kek_check_context(vault_id: str) -> Context:
    return context({"purpose": "kek-check", "vault_id": vault_id})


class Envelope:
    """One key bound to AES-256-GCM, to seal and open many blobs without re-creating the cipher."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never show key material
        return "Envelope(<key>)"

    def seal(self, plaintext: bytes, context: Context) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _VERSION_BYTE + nonce + self._aead.encrypt(nonce, plaintext, context)

    def seal_many(self, items: Sequence[tuple[bytes, Context]]) -> list[bytes]:
        """``seal`` for many (plaintext, context) pairs; the random nonces come from one os.urandom call."""
        random = os.urandom(NONCE_BYTES * len(items))
        nonces = [random[i : i + NONCE_BYTES] for i in range(0, len(random), NONCE_BYTES)]
        encrypt = self._aead.encrypt
        # One comprehension: the store seals every record of every batch here.
        return [
            _VERSION_BYTE + n + encrypt(n, plaintext, aad) for n, (plaintext, aad) in zip(nonces, items, strict=True)
        ]

    def open(self, blob: bytes, context: Context) -> bytes:
        """The plaintext of a blob sealed under this key and ``context``, or the opaque ``InvalidRecord``."""
        if not blob:
            raise InvalidRecord()
        if blob[0] > BLOB_VERSION:
            raise UnsupportedVersion(f"blob format version {blob[0]} is newer than this Consentry understands")
        if blob[0] != BLOB_VERSION or len(blob) < _HEADER_BYTES + TAG_BYTES:
            raise InvalidRecord()
        try:
            return self._aead.decrypt(blob[1:_HEADER_BYTES], blob[_HEADER_BYTES:], context)
        except InvalidTag:
            raise InvalidRecord() from None


def seal(key: bytes, plaintext: bytes, context: Context) -> bytes:
    """Encrypt ``plaintext`` under ``key``, bound to ``context``, with a fresh random nonce."""
    return Envelope(key).seal(plaintext, context)


def open_blob(key: bytes, blob: bytes, context: Context) -> bytes:
    """Decrypt a blob made by ``seal`` under the same key and context, or raise ``InvalidRecord``."""
    return Envelope(key).open(blob, context)


def open_vault_record(
    kek: bytes, wrapped_key: bytes, blob: bytes, *, record_id: int, key_id: str, category: str
) -> bytes:
    """The JSON of one vault record (a ``records`` row) from the KEK and its ``data_keys.wrapped``.

    The data key is unwrapped under ``wrap_context(key_id)``, then the record opened under
    ``record_context("records", record_id, key_id, category)``; any mismatch is ``InvalidRecord``.
    """
    data_key = open_blob(kek, wrapped_key, wrap_context(key_id))
    return open_blob(data_key, blob, record_context("records", record_id, key_id, category))
