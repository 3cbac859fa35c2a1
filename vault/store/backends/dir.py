"""The embedded ``dir`` backend: a SQLite catalog plus one payload file per stored batch, in one folder.

Layout under the data folder (0700)::

    catalog.sqlite3            WAL, synchronous=FULL, secure_delete=ON
    batches/<id[:2]>/<id>.json the decrypted canonical payload of each stored batch

A payload file is written and fsynced (then renamed, and its folder fsynced) inside the catalog
transaction before the row says "stored", so an acknowledged batch is on disk. Files of erased batches
are deleted after the erasure commits; ``sweep`` (run on open) removes any left by a crash in between.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vault.store.backend import BackendKind, BatchRow, StoredRecord
from vault.store.backends.sql import CATALOG_MIGRATIONS, SqlTx

CATALOG = "catalog.sqlite3"


class DirTx(SqlTx):
    def __init__(self, cursor: sqlite3.Cursor, backend: DirBackend) -> None:
        super().__init__(cursor)
        self._backend = backend
        self.files_to_delete: list[Path] = []
        self.erased = False

    def lock_log(self) -> None:
        """Nothing to do: BEGIN IMMEDIATE already made this the only writer."""

    def store_records(self, batch: BatchRow, subject: str, payload: bytes, records: Sequence[dict[str, Any]]) -> None:
        self._backend.write_payload(batch.batch_id, payload)

    def erase_records(self, batch_ids: Sequence[str]) -> int:
        erased = 0
        for batch_id in batch_ids:
            row = self.get_batch(batch_id)
            if row is not None and row.state == "stored":
                erased += row.record_count
            self.files_to_delete.append(self._backend.payload_path(batch_id))
        self.erased = True
        return erased

    def iter_records(self, category: str, batch_ids: Sequence[str]) -> Iterator[StoredRecord]:
        for batch_id in batch_ids:
            row = self.get_batch(batch_id)
            if row is None or row.state != "stored":
                continue
            data = json.loads(self._backend.payload_path(batch_id).read_bytes())
            for record in data["records"]:
                if record.get("category") == category:
                    yield StoredRecord(batch_id, row.subject_digest, category, record)


class DirBackend:
    """``StoreBackend`` over one folder; safe for several threads and processes on one machine."""

    kind: BackendKind = "dir"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (root / "batches").mkdir(mode=0o700, exist_ok=True)
        self._db = root / CATALOG
        self._migrate()
        self.sweep()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db, timeout=60.0, isolation_level=None, check_same_thread=False)
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
            for migration in CATALOG_MIGRATIONS:
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

    @contextmanager
    def transaction(self) -> Iterator[DirTx]:
        conn = self._connect()
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
            if tx.erased:
                # Push erased pages out of the WAL into the (secure-deleted) main file.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def payload_path(self, batch_id: str) -> Path:
        return self.root / "batches" / batch_id[:2] / f"{batch_id}.json"

    def write_payload(self, batch_id: str, payload: bytes) -> None:
        path = self.payload_path(batch_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def sweep(self) -> int:
        """Delete payload files whose batch is not stored (crash leftovers); return how many."""
        removed = 0
        # Under the catalog's write lock: another store process writes a payload only inside its own
        # write transaction, so no file deleted here can be one that is about to be committed.
        with self.transaction() as tx:
            stored = {b.batch_id for b in tx.stored_batches()}
            for path in (self.root / "batches").glob("*/*"):
                if path.stem not in stored or path.suffix != ".json":
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def close(self) -> None:
        """Nothing held open between transactions."""
