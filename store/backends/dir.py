"""The embedded ``dir`` backend: one SQLite catalog in one folder, records encrypted inside it.

Layout under the data folder (0700)::

    catalog.sqlite3            WAL, synchronous=FULL, secure_delete=ON; records sealed per subject
    batches/<id[:2]>/<id>.json only in stores from before records were encrypted: plaintext payloads,
                               sealed into the catalog and deleted by ``seal_legacy_records``

Records are ciphertext under their subject's data key (``store.record_keys``). An erasure deletes
the subject's records and key row; secure_delete zeroes the freed pages and the WAL is checkpointed and
truncated after the commit (once no reader holds it: ``purge_old_keys`` retries), so neither the key nor
the records stay in the catalog's files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from store.backend import BackendKind, BatchRow, SealedRecord, StoredRecord
from store.backends.sql import CATALOG_MIGRATIONS, Migration, SqlTx

CATALOG = "catalog.sqlite3"
DIR_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0002_dir_sealed_records",
        """
CREATE TABLE records (batch_id TEXT NOT NULL, idx INTEGER NOT NULL, category TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (batch_id, idx))
""",
    ),
)
_CHUNK = 500  # batch ids per IN (...) list; SQLite allows 32766 parameters
_BUSY_TIMEOUT_MS = 60_000  # a writer waits this long for another process's write
_CHECKPOINT_WAIT_MS = 1_000  # an erasure's checkpoint waits this long for readers (writers wait meanwhile)
_IDLE_CONNECTIONS = 8  # kept open between transactions (the store's worker threads share them)


class DirTx(SqlTx):
    def __init__(self, cursor: sqlite3.Cursor, backend: DirBackend) -> None:
        super().__init__(cursor)
        self._backend = backend
        self.files_to_delete: list[Path] = []
        self.erased = False

    def lock_log(self) -> None:
        """Nothing to do: BEGIN IMMEDIATE already made this the only writer."""

    def store_records(self, batch: BatchRow, records: Sequence[SealedRecord]) -> None:
        self._cur.executemany(
            "INSERT INTO records (batch_id, idx, category, body) VALUES (?, ?, ?, ?)",
            [(batch.batch_id, r.record_index, r.category, r.sealed) for r in records],
        )

    def erase_records(self, batch_ids: Sequence[str]) -> int:
        erased = 0
        for start in range(0, len(batch_ids), _CHUNK):
            chunk = list(batch_ids[start : start + _CHUNK])
            marks = ", ".join("?" for _ in chunk)
            erased += self._q(f"DELETE FROM records WHERE batch_id IN ({marks})", chunk).rowcount
        for batch_id in batch_ids:
            legacy = self._backend.legacy_path(batch_id)
            if legacy.exists():
                row = self.get_batch(batch_id)
                erased += row.record_count if row is not None and row.state == "stored" else 0
                self.files_to_delete.append(legacy)
        self.erased = True
        return erased

    def delete_subject_key(self, subject_digest: str) -> bool:
        self.erased = True  # checkpoint the WAL after the commit: the old key page must leave it
        return super().delete_subject_key(subject_digest)

    def rewrap_subject_keys(self, rows: Sequence[tuple[str, bytes]]) -> None:
        self.erased = True  # the keys wrapped under the old KEK leave the WAL too
        super().rewrap_subject_keys(rows)

    def iter_records(self, category: str, batch_ids: Sequence[str]) -> Iterator[StoredRecord]:
        for start in range(0, len(batch_ids), _CHUNK):
            chunk = list(batch_ids[start : start + _CHUNK])
            marks = ", ".join("?" for _ in chunk)
            rows = self._q(
                "SELECT r.batch_id, b.subject_digest, r.idx, r.body FROM records r JOIN batches b USING (batch_id) "
                f"WHERE r.category = ? AND b.state = 'stored' AND r.batch_id IN ({marks}) ORDER BY r.batch_id, r.idx",
                [category, *chunk],
            ).fetchall()
            for batch_id, subject, index, body in rows:
                yield StoredRecord(batch_id, subject, category, int(index), bytes(body))

    def legacy_batches(self) -> list[str]:
        stored = {b.batch_id for b in self.stored_batches()}
        return sorted(p.stem for p in self._backend.legacy_files() if p.stem in stored)

    def take_legacy_records(self, batch_id: str) -> list[dict[str, Any]]:
        path = self._backend.legacy_path(batch_id)
        records = list(from_json(path.read_bytes())["records"])
        self.files_to_delete.append(path)
        return records


class DirBackend:
    """``StoreBackend`` over one folder; safe for several threads and processes on one machine."""

    kind: BackendKind = "dir"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = root / CATALOG
        # SQLite would create it 0644, and its WAL and shared-memory files take the database's mode.
        os.close(os.open(self._db, os.O_RDWR | os.O_CREAT, 0o600))
        # Connections between transactions, reused: opening one costs its pragmas, and closing the last
        # one open checkpoints the whole WAL into the catalog and deletes it (two more fsyncs per upload).
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        # An erasure's pages may still be in the WAL (a reader held it); at start: maybe from an earlier process.
        self._checkpoint_due = True
        self._checkpoint_lock = threading.Lock()
        self._migrate()
        self.sweep()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # durable at COMMIT, before we acknowledge
        conn.execute("PRAGMA secure_delete=ON")  # erased rows are zeroed, not left in free pages
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self) -> None:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
            for migration in CATALOG_MIGRATIONS + DIR_MIGRATIONS:
                if migration.name in done:
                    continue
                for statement in migration.sql.format(blob="BLOB").split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, strftime('%s','now'))",
                    (migration.name,),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def _take(self) -> sqlite3.Connection:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._idle_lock:
            if len(self._idle) < _IDLE_CONNECTIONS and not conn.in_transaction:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def transaction(self) -> Iterator[DirTx]:
        conn = self._take()
        reuse = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            tx = DirTx(conn.cursor(), self)
            try:
                yield tx
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            for path in tx.files_to_delete:
                path.unlink(missing_ok=True)
            for folder in {p.parent for p in tx.files_to_delete}:
                with suppress(OSError):  # not empty (yet), or another process removed it
                    folder.rmdir()  # an emptied legacy folder: nothing may suggest a payload is left
            if tx.erased:
                self._checkpoint(conn)
            reuse = True
        finally:
            if reuse:
                self._give_back(conn)
            else:
                conn.close()  # after an error: a fresh connection next time

    def legacy_path(self, batch_id: str) -> Path:
        return self.root / "batches" / batch_id[:2] / f"{batch_id}.json"

    def legacy_files(self) -> list[Path]:
        return sorted((self.root / "batches").glob("*/*.json"))

    def sweep(self) -> int:
        """Delete leftover payload files whose batch is not stored (crash leftovers); return how many."""
        removed = 0
        folder = self.root / "batches"
        if not folder.exists():
            return 0
        # Under the catalog's write lock, so no other store process is converting a file meanwhile.
        with self.transaction() as tx:
            stored = {b.batch_id for b in tx.stored_batches()}
            for path in folder.glob("*/*"):
                if path.stem not in stored or path.suffix != ".json":
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        """Push erased pages out of the WAL into the (secure-deleted) main file, and empty the WAL.

        A reader (a ``sqlite3 .dump``, a long export) keeps the WAL's frames in use; the checkpoint would wait
        for it while blocking every writer, so it gives up after a second and ``purge_old_keys`` retries.
        """
        with self._checkpoint_lock:  # the last checkpoint to finish says whether one is still due
            conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            try:
                busy, _frames, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._checkpoint_due = bool(busy)
        return not busy

    def purge_old_keys(self) -> bool:
        """secure_delete zeroed the old rows; an erasure's checkpoint that a reader put off is retried here."""
        if not self._checkpoint_due:
            return True
        conn = self._take()
        try:
            return self._checkpoint(conn)
        finally:
            self._give_back(conn)

    def close(self) -> None:
        """Close the connections kept between transactions."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
