"""Records at rest in the store: sealed under a per-subject data key, wrapped by the store's records KEK.

Each subject (a ``subject_digest``) gets a random 256-bit data key the first time one of its batches is
stored. The key is kept in the backend's ``subject_keys`` table only as a ``protocol.envelope`` blob under
the store's records KEK (``DATA/keys/store-records-kek.key``), bound to
``{"purpose": "store-subject-key", "subject_digest"}``. Every record is one envelope blob under its
subject's key, bound to ``{"purpose": "store-record", "batch_id", "record_index", "subject_digest",
"category"}``: a blob moved to another batch, position, subject or category does not open.

Erasure deletes the subject's key row (crypto-shredding) and marks a records-KEK rotation due, which
runs right after the erasure commits (``RecordKeyring.rotate_if_due``, ``store.records_kek``): every
remaining subject key is re-wrapped under a new KEK and the old KEK file is replaced. A copy of the
erased key row that PostgreSQL's heap files or WAL, SQLite's WAL or a backup still hold is then wrapped
under a KEK that no longer exists, and the record ciphertexts under it can be decrypted by no one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic_core import from_json, to_json

from protocol.envelope import Context, ContextTemplate, Envelope, context, new_key, open_blob, seal
from protocol.errors import InvalidRecord, KeyUnavailable
from store.backend import SealedRecord, StoreBackend, StoredRecord, StoreTx
from store.records_kek import RECORDS_KEK_FILE, RecordsKek, kek_id

RECORD_PURPOSE = "store-record"
SUBJECT_KEY_PURPOSE = "store-subject-key"


def subject_key_context(subject_digest: str) -> Context:
    return context({"purpose": SUBJECT_KEY_PURPOSE, "subject_digest": subject_digest})


def record_fields(batch_id: str, subject_digest: str, category: str) -> dict[str, object]:
    """A stored record's context fields but its position (``record_index``)."""
    return {"purpose": RECORD_PURPOSE, "batch_id": batch_id, "subject_digest": subject_digest, "category": category}


@functools.lru_cache(maxsize=4096)
def record_contexts(batch_id: str, subject_digest: str, category: str) -> ContextTemplate:
    """The contexts of one batch's records of one category, by position."""
    return ContextTemplate(record_fields(batch_id, subject_digest, category), "record_index")


class StoreRecordAad:
    """The contexts of one batch's records, by position and category."""

    def __init__(self, batch_id: str, subject_digest: str) -> None:
        self._batch_id = batch_id
        self._subject = subject_digest
        self._templates: dict[str, ContextTemplate] = {}  # by category: one dict lookup per record

    def for_record(self, record_index: int, category: str) -> Context:
        template = self._templates.get(category)
        if template is None:
            template = self._templates[category] = record_contexts(self._batch_id, self._subject, category)
        return template(record_index)


class RecordKeyring:
    """Seals and opens store records; finds, creates and destroys the per-subject data keys; rotates the KEK."""

    def __init__(self, kek: RecordsKek) -> None:
        self._kek = kek

    def _kek_named(self, tx: StoreTx, recorded: str | None) -> bytes:
        """The KEK the database says its keys are wrapped under; this store's own on first use."""
        if recorded is None:
            tx.set_records_kek(self._kek.kek_id, rotation_due=False)
            return self._kek.key
        return self._kek.for_id(recorded)

    def subject_key(
        self,
        tx: StoreTx,
        subject_digest: str,
        *,
        create: bool,
        now: int = 0,
        read: tuple[bytes | None, str | None] | None = None,
    ) -> bytes | None:
        """The subject's data key; a new one when ``create`` and there is none (then ``now`` is its time).

        ``read``: (wrapped key, KEK id) as this transaction already read them in one statement, instead of
        reading them again first (``StoreTx.upload_view``)."""
        for attempt in (1, 2):
            wrapped, recorded = read if read is not None and attempt == 1 else tx.get_wrapped_key(subject_digest)
            if wrapped is None and create:
                held = tx.records_kek(share=True)  # no rotation may slip between wrapping and committing
                key = new_key()
                kek = self._kek_named(tx, held[0] if held else None)
                if tx.insert_subject_key(subject_digest, seal(kek, key, subject_key_context(subject_digest)), now):
                    return key
                wrapped, recorded = tx.get_wrapped_key(subject_digest)  # another store process created it first
            if wrapped is None:
                return None
            try:
                return open_blob(self._kek_named(tx, recorded), wrapped, subject_key_context(subject_digest))
            except (InvalidRecord, KeyUnavailable):
                if attempt == 1:
                    continue  # read just before a rotation committed, and this process promoted it: read again
                raise KeyUnavailable(
                    f"a subject key does not open with the records KEK ({RECORDS_KEK_FILE}): this store runs with "
                    "another key folder than the one its records were stored with; restore that folder"
                ) from None
        return None  # unreachable: the second attempt returns or raises

    def seal_batch(
        self, tx: StoreTx, batch_id: str, subject_digest: str, records: Sequence[dict[str, Any]], now: int
    ) -> list[SealedRecord]:
        """Every record of one batch sealed under its subject's key: one key lookup per batch."""
        key = self.subject_key(tx, subject_digest, create=True, now=now)
        assert key is not None
        return self.seal_with(key, batch_id, subject_digest, records)

    @staticmethod
    def seal_with(
        key: bytes, batch_id: str, subject_digest: str, records: Sequence[dict[str, Any]]
    ) -> list[SealedRecord]:
        """Every record of one batch sealed under ``key``, the subject's data key (``subject_key``)."""
        aad = StoreRecordAad(batch_id, subject_digest)
        # pydantic-core's encoder (already a dependency) is ~4x faster per record than the json module's.
        blobs = Envelope(key).seal_many([(to_json(r), aad.for_record(i, r["category"])) for i, r in enumerate(records)])
        return [SealedRecord(i, r["category"], blob) for i, (r, blob) in enumerate(zip(records, blobs, strict=True))]

    def open_records(
        self, tx: StoreTx, records: Iterable[StoredRecord]
    ) -> Iterator[tuple[StoredRecord, dict[str, Any]]]:
        """Decrypt stored records; those whose subject key is gone (erased meanwhile) are skipped."""
        ciphers: dict[str, Envelope | None] = {}
        for record in records:
            if record.subject not in ciphers:
                key = self.subject_key(tx, record.subject, create=False)
                ciphers[record.subject] = None if key is None else Envelope(key)
            cipher = ciphers[record.subject]
            if cipher is None:
                continue
            aad = record_contexts(record.batch_id, record.subject, record.category)(record.index)
            yield record, from_json(cipher.open(record.sealed, aad))

    def shred(self, tx: StoreTx, subject_digest: str) -> bool:
        """Destroy the subject's data key, and have the KEK replaced once this commits (``rotate_if_due``):
        every record sealed under the key becomes unreadable, from any copy of the key row."""
        # The KEK row first, as a rotation takes it: a rotation never waits on this key row while we wait on it.
        if tx.records_kek(lock=True) is None:
            tx.set_records_kek(self._kek.kek_id, rotation_due=False)
        deleted = tx.delete_subject_key(subject_digest)
        if deleted:
            tx.mark_rotation_due()
        return deleted

    def rotate_if_due(self, backend: StoreBackend) -> bool:
        """Finish an interrupted rotation; then, if an erasure asked for it, replace the KEK (``store.records_kek``).

        Returns whether a new KEK was made. On an error nothing is undone: a KEK staged before a commit
        whose outcome is unknown is kept, and the next call (or the next start) settles it.
        """
        with self._kek.lock:
            with backend.transaction() as tx:
                held = tx.records_kek(lock=True)
                if held is None:
                    tx.set_records_kek(self._kek.kek_id, rotation_due=False)
                    return False
                recorded, due = held
                self._kek.settle(recorded)
                if not due:
                    return False
                fresh = self._kek.stage()
                rewrap_subject_keys(tx, self._kek.for_id(recorded), fresh)
                tx.set_records_kek(kek_id(fresh), rotation_due=False)
            self._kek.promote()
        backend.purge_old_keys()
        return True


def rewrap_subject_keys(tx: StoreTx, old: bytes, fresh: bytes) -> int:
    """Re-wrap every subject key from the ``old`` KEK to the ``fresh`` one (rotation step 2); returns how many."""
    rows = []
    for digest, wrapped in tx.subject_keys():
        where = subject_key_context(digest)
        rows.append((digest, seal(fresh, open_blob(old, wrapped, where), where)))
    tx.rewrap_subject_keys(rows)
    return len(rows)


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
