"""The one storage interface the store service uses (``StoreBackend``), with its row types.

A backend hands out transactions (``StoreTx``). Everything the service decides -- chain order,
approvals, idempotency -- happens inside one transaction, under the backend's locks: ``lock=True`` reads
take the row lock (``SELECT ... FOR UPDATE`` in PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers), and ``lock_log`` serialises audit-log appends. A transaction commits when its
``with`` block ends without an exception, and only then is anything acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

BackendKind = Literal["dir", "postgres"]
# "withdrawn": the device erased the batch locally before shipping it; it will never arrive.
TERMINAL_STATES = ("stored", "rejected", "erased", "withdrawn")


@dataclass(frozen=True)
class DeviceRow:
    kid: str
    public_key: bytes
    enrolled_at: int
    last_seq: int
    last_manifest_hash: str
    checkpoint_seq: int | None
    checkpoint_hash: str | None


@dataclass(frozen=True)
class BatchRow:
    batch_id: str
    device_kid: str
    seq: int
    subject_digest: str
    manifest_json: str | None  # NULL once the subject is erased
    manifest_sha256: str
    state: str
    submitted_at: int
    header_sha256: str | None = None
    stored_at: int | None = None
    receipt_json: str | None = None
    record_count: int = 0


class SealedRecord(NamedTuple):
    """One window record of a batch as it goes into storage: encrypted (``store.record_keys``).

    A named tuple, not a dataclass: ingest makes thousands per batch, and tuples are built ~3x faster.
    """

    record_index: int  # its position in the batch's payload, bound into the ciphertext
    category: str
    sealed: bytes


@dataclass(frozen=True)
class StoredRecord:
    """One stored window record as an export reads it, still encrypted under its subject's key."""

    batch_id: str
    subject: str  # the subject digest
    category: str
    index: int
    sealed: bytes


@dataclass(frozen=True)
class UploadView:
    """What an upload's checks before decryption read, in one statement (``StoreTx.upload_view``)."""

    batch: BatchRow
    device: DeviceRow | None  # the uploading device's row (None: not enrolled)
    open_before: int  # the device's batches before this one's seq not in a final state
    wrapped_key: bytes | None  # the batch subject's wrapped data key (None: none yet)
    kek_id: str | None  # the records KEK it is wrapped under (read with it: one snapshot)


class StoreTx(Protocol):
    # enrollment
    def insert_token(self, token_hash: str, created: int, expires: int) -> None: ...
    def consume_token(self, token_hash: str, device_kid: str, now: int) -> bool: ...
    def get_device(self, kid: str, *, lock: bool = False) -> DeviceRow | None: ...
    def insert_device(self, device: DeviceRow) -> bool: ...
    def set_device_chain(self, kid: str, seq: int, manifest_hash: str) -> None: ...
    def set_device_checkpoint(self, kid: str, seq: int, head_hash: str) -> None: ...
    def use_nonce(self, key: str, nonce: str, now: int, forget_before: int) -> bool: ...

    # subjects, batches, approvals, checkpoints
    def subject_owner(self, subject_digest: str) -> str | None: ...
    def insert_subject(self, subject_digest: str, device_kid: str) -> None: ...
    def get_batch(self, batch_id: str, *, lock: bool = False) -> BatchRow | None: ...
    def upload_view(self, batch_id: str, device_kid: str) -> UploadView | None: ...  # None: no such batch
    def insert_batch(self, batch: BatchRow) -> None: ...
    def update_batch(self, batch_id: str, **fields: Any) -> None: ...
    def open_batches_before(self, device_kid: str, seq: int) -> int: ...
    def list_batches(self, states: Sequence[str], limit: int) -> list[BatchRow]: ...
    def batches_of_subject(self, subject_digest: str) -> list[BatchRow]: ...
    def approvals_json(self, batch_id: str) -> list[str]: ...
    def insert_approval(
        self, batch_id: str, steward_key: str, decision: str, approval_json: str, created: int
    ) -> bool: ...
    def insert_checkpoint(self, device_kid: str, seq: int, head_hash: str, created: int, received: int) -> None: ...
    def checkpoint_hash(self, device_kid: str, seq: int) -> str | None: ...  # a witnessed head, if any

    # records, sealed under per-subject data keys (store.record_keys)
    def get_subject_key(self, subject_digest: str) -> bytes | None: ...
    def insert_subject_key(self, subject_digest: str, wrapped: bytes, created: int) -> bool: ...
    def delete_subject_key(self, subject_digest: str) -> bool: ...
    def get_wrapped_key(self, subject_digest: str) -> tuple[bytes | None, str | None]: ...
    def subject_keys(self) -> list[tuple[str, bytes]]: ...
    def rewrap_subject_keys(self, rows: Sequence[tuple[str, bytes]]) -> None: ...
    def records_kek(self, *, lock: bool = False, share: bool = False) -> tuple[str, bool] | None: ...
    def set_records_kek(self, kek_id: str, *, rotation_due: bool) -> None: ...
    def mark_rotation_due(self) -> None: ...
    def store_records(self, batch: BatchRow, records: Sequence[SealedRecord]) -> None: ...
    def erase_records(self, batch_ids: Sequence[str]) -> int: ...
    def iter_records(self, category: str, batch_ids: Sequence[str]) -> Iterator[StoredRecord]: ...
    def legacy_batches(self) -> list[str]: ...  # stored batches whose records an older store kept in clear
    def take_legacy_records(self, batch_id: str) -> list[dict[str, Any]]: ...  # read and delete them
    def stored_batches(self) -> list[BatchRow]: ...

    # audit log
    def pipelined(self) -> AbstractContextManager[object]: ...  # send unread statements together (PostgreSQL)
    def lock_log(self) -> None: ...
    def log_size(self) -> int: ...
    def log_frontier(self) -> tuple[int, dict[tuple[int, int], bytes]]: ...  # size, nodes appending needs
    def insert_leaf(self, index: int, kind: str, time: int, data: bytes) -> None: ...
    def insert_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None: ...
    def get_nodes(self, coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...
    def insert_head(self, size: int, head_json: str) -> None: ...
    def get_head(self, size: int | None = None) -> str | None: ...
    def get_leaves(self, start: int, end: int) -> list[bytes]: ...

    # erasures and exports
    def get_erasure(self, request_id: str) -> str | None: ...
    def insert_erasure(
        self, request_id: str, subject_digest: str, device_kid: str, receipt_json: str, created: int
    ) -> None: ...
    def insert_export(
        self, export_id: str, created: int, manifest_sha256: str, subject_digests: Sequence[str]
    ) -> None: ...
    def mark_exports_with_subject(self, subject_digest: str) -> list[str]: ...
    def export_flags(self) -> dict[str, bool]: ...

    def count_rows(self, table: str) -> int: ...


class StoreBackend(Protocol):
    kind: BackendKind

    def transaction(self) -> AbstractContextManager[StoreTx]: ...
    def purge_old_keys(self) -> bool: ...  # after a KEK rotation: drop the old key rows' copies; False: retry
    def close(self) -> None: ...
