"""Records at rest in the store: sealed under a per-subject data key, wrapped by the store's records KEK.

Each subject (a ``subject_digest``) gets a random 256-bit data key the first time one of its batches is
stored. The key is kept in the backend's ``subject_keys`` table only as a ``protocol.envelope`` blob under
the store's records KEK (``DATA/keys/store-records-kek.key``), bound to
``{"purpose": "store-subject-key", "subject_digest"}``. Every record is one envelope blob under its
subject's key, bound to ``{"purpose": "store-record", "batch_id", "record_index", "subject_digest",
"category"}``: a blob moved to another batch, position, subject or category does not open.

Erasure deletes the subject's key row (crypto-shredding): the record ciphertexts that PostgreSQL's
data files and WAL, or SQLite's free pages, may still hold can no longer be decrypted by anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic_core import from_json, to_json

from protocol.envelope import BLOB_VERSION, BlobCipher, associated_data, new_key, open_blob, seal
from protocol.errors import InvalidRecord, KeyUnavailable
from store.backend import SealedRecord, StoreBackend, StoredRecord, StoreTx
from store.keys import RECORDS_KEK_FILE

RECORD_PURPOSE = "store-record"
SUBJECT_KEY_PURPOSE = "store-subject-key"
_AAD_DOMAIN = b"consentry-blob\x00"


def subject_key_context(subject_digest: str) -> dict[str, object]:
    return {"purpose": SUBJECT_KEY_PURPOSE, "subject_digest": subject_digest}


def record_context(batch_id: str, record_index: int, subject_digest: str, category: str) -> dict[str, object]:
    return {
        "purpose": RECORD_PURPOSE,
        "batch_id": batch_id,
        "record_index": record_index,
        "subject_digest": subject_digest,
        "category": category,
    }


class StoreRecordAad:
    """``associated_data(record_context(...))`` for many records of one batch, by splicing in the index.

    Equal byte for byte to the generic form (a test checks it): the keys are in RFC 8785 order and
    json.dumps escapes these ASCII strings exactly as RFC 8785 does.
    """

    def __init__(self, batch_id: str, subject_digest: str) -> None:
        self._batch = json.dumps(batch_id).encode()
        self._subject = json.dumps(subject_digest).encode()
        self._parts: dict[str, tuple[bytes, bytes]] = {}  # category -> (prefix, suffix)

    def for_record(self, record_index: int, category: str) -> bytes:
        parts = self._parts.get(category)
        if parts is None:
            prefix = b'%s{"batch_id":%s,"category":%s,"purpose":"%s","record_index":' % (
                _AAD_DOMAIN,
                self._batch,
                json.dumps(category).encode(),
                RECORD_PURPOSE.encode(),
            )
            suffix = b',"subject_digest":%s,"v":%d}' % (self._subject, BLOB_VERSION)
            parts = self._parts[category] = (prefix, suffix)
        return b"%s%d%s" % (parts[0], record_index, parts[1])


class RecordKeyring:
    """Seals and opens store records; finds, creates and destroys the per-subject data keys."""

    def __init__(self, kek: bytes) -> None:
        self._kek = kek

    def subject_key(self, tx: StoreTx, subject_digest: str, *, create: bool, now: int = 0) -> bytes | None:
        """The subject's data key; a new one when ``create`` and there is none (then ``now`` is its time)."""
        wrapped = tx.get_subject_key(subject_digest)
        if wrapped is None and create:
            key = new_key()
            if tx.insert_subject_key(subject_digest, seal(self._kek, key, subject_key_context(subject_digest)), now):
                return key
            wrapped = tx.get_subject_key(subject_digest)  # another store process created it first
        if wrapped is None:
            return None
        try:
            return open_blob(self._kek, wrapped, subject_key_context(subject_digest))
        except InvalidRecord:
            raise KeyUnavailable(
                f"a subject key does not open with the records KEK ({RECORDS_KEK_FILE}): this store runs with "
                "another key folder than the one its records were stored with; restore that folder"
            ) from None

    def seal_batch(
        self, tx: StoreTx, batch_id: str, subject_digest: str, records: Sequence[dict[str, Any]], now: int
    ) -> list[SealedRecord]:
        """Every record of one batch sealed under its subject's key: one key lookup per batch."""
        key = self.subject_key(tx, subject_digest, create=True, now=now)
        assert key is not None
        aad = StoreRecordAad(batch_id, subject_digest)
        # pydantic-core's encoder (already a dependency) is ~4x faster per record than the json module's.
        blobs = BlobCipher(key).seal_many(
            [(to_json(r), aad.for_record(i, r["category"])) for i, r in enumerate(records)]
        )
        return [SealedRecord(i, r["category"], blob) for i, (r, blob) in enumerate(zip(records, blobs, strict=True))]

    def open_records(
        self, tx: StoreTx, records: Iterable[StoredRecord]
    ) -> Iterator[tuple[StoredRecord, dict[str, Any]]]:
        """Decrypt stored records; those whose subject key is gone (erased meanwhile) are skipped."""
        ciphers: dict[str, BlobCipher | None] = {}
        for record in records:
            if record.subject not in ciphers:
                key = self.subject_key(tx, record.subject, create=False)
                ciphers[record.subject] = None if key is None else BlobCipher(key)
            cipher = ciphers[record.subject]
            if cipher is None:
                continue
            aad = StoreRecordAad(record.batch_id, record.subject).for_record(record.index, record.category)
            yield record, from_json(cipher.open(record.sealed, aad))

    @staticmethod
    def shred(tx: StoreTx, subject_digest: str) -> bool:
        """Destroy the subject's data key: every record sealed under it becomes unreadable."""
        return tx.delete_subject_key(subject_digest)


def seal_legacy_records(backend: StoreBackend, keyring: RecordKeyring, now: int) -> int:
    """Seal records an older store kept in clear, one batch per transaction; returns how many batches."""
    done = 0
    while True:
        with backend.transaction() as tx:
            pending = tx.legacy_batches()
            if not pending:
                return done
            row = tx.get_batch(pending[0], lock=True)
            records = tx.take_legacy_records(pending[0])
            if row is not None and records:
                tx.store_records(row, keyring.seal_batch(tx, row.batch_id, row.subject_digest, records, now))
        done += 1


def generic_record_aad(batch_id: str, record_index: int, subject_digest: str, category: str) -> bytes:
    """The same associated data through ``protocol.envelope``'s canonicaliser (what the tests compare)."""
    return associated_data(record_context(batch_id, record_index, subject_digest, category))
