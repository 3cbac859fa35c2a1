"""The ``postgres`` backend: the catalog and every record in PostgreSQL, for many agents and scale-out.

Records are sealed per subject before they reach PostgreSQL (``store.record_keys``) and go in with
one binary ``COPY`` per batch inside the batch's transaction; an erasure deletes the subject's key row,
so the ciphertexts PostgreSQL keeps in its data files and WAL until VACUUM and WAL recycling stay
unreadable. Several store processes may share one database: row locks (``SELECT ... FOR UPDATE``)
order work on a batch or device, an advisory transaction lock orders audit-log appends, and unique
constraints catch anything else. Migrations are named, applied in order under an advisory lock, and
recorded in ``_migrations``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from protocol.store_errors import Unavailable
from store.backend import BackendKind, BatchRow, SealedRecord, StoredRecord
from store.backends.sql import CATALOG_MIGRATIONS, Migration, SqlTx

_LOG_LOCK = 0x636F6E73  # "cons": one advisory lock id for the audit log
_MIGRATION_LOCK = 0x636F6E74
RECORD_COLUMNS = ("batch_id", "idx", "category", "body")
RECORD_TYPES = ("text", "int4", "text", "bytea")
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0002_records",
        """
CREATE TABLE records (batch_id TEXT NOT NULL, subject_digest TEXT NOT NULL, category TEXT NOT NULL,
    start_ts BIGINT NOT NULL, end_ts BIGINT NOT NULL, body JSONB NOT NULL);
CREATE INDEX records_batch ON records (batch_id);
CREATE INDEX records_category ON records (category)
""",
    ),
    Migration(
        # Records become ciphertext. Plaintext rows of older stores move aside to legacy_plain_records,
        # which seal_legacy_records converts and then drops.
        "0003_sealed_records",
        """
DROP INDEX records_batch;
DROP INDEX records_category;
ALTER TABLE records RENAME TO legacy_plain_records;
CREATE TABLE records (batch_id TEXT NOT NULL, idx INTEGER NOT NULL, category TEXT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (batch_id, idx))
""",
    ),
    Migration(
        # The records KEK whose rotation last had the key table rewritten (PostgresBackend.purge_old_keys).
        "0004_subject_keys_purged",
        "CREATE TABLE subject_keys_purged (one INTEGER PRIMARY KEY CHECK (one = 1), kek_id TEXT NOT NULL)",
    ),
)
# Whatever keeps PostgreSQL from removing the rows the rotation (the last write to records_kek) deleted, so
# that a rewrite now would copy the erased key row into the new file: a transaction holding an xid no newer
# than the rotation anywhere on the server (it is still running for every snapshot taken since, the
# rewrite's own included), a session of this database (or of none: a standby's walsender) whose snapshot
# is that old, a prepared transaction, a replication slot.
_OLDER_SNAPSHOTS = """
WITH rotation AS (SELECT age(xmin) AS age FROM records_kek WHERE one = 1)
SELECT
    (SELECT count(*) FROM pg_stat_activity, rotation WHERE pid <> pg_backend_pid()
        AND (age(backend_xid) >= rotation.age
             OR ((datname = current_database() OR datname IS NULL) AND age(backend_xmin) >= rotation.age)))
  + (SELECT count(*) FROM pg_prepared_xacts, rotation WHERE age(transaction) >= rotation.age)
  + (SELECT count(*) FROM pg_replication_slots, rotation WHERE age(xmin) >= rotation.age)
"""
# How long the rewrite waits for its exclusive lock: every key lookup (each upload) queues behind it meanwhile.
_PURGE_LOCK_TIMEOUT = "1s"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresTx(SqlTx):
    placeholder = "%s"
    for_update = " FOR UPDATE"
    for_share = " FOR SHARE"

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        super().__init__(cursor)
        self._pg = cursor

    def pipelined(self) -> AbstractContextManager[object]:
        """psycopg's pipeline mode: statements are sent without waiting for their answers, until a result
        is read (or the block ends); each still runs in order, in this transaction, with its own snapshot.
        An error surfaces at the next read or at the block's end, and aborts the transaction as before.
        No COPY inside (pipeline mode does not allow it)."""
        return self._pg.connection.pipeline()

    def lock_log(self) -> None:
        self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (_LOG_LOCK,))

    def log_frontier(self) -> tuple[int, dict[tuple[int, int], bytes]]:
        """One statement for the size and the frontier nodes (``SqlTx.log_frontier``); in a pipeline it travels
        with the lock taken just before it, and its snapshot is taken after that lock is held."""
        self._pg.execute(
            "SELECT s.n, l.level, l.idx, l.hash FROM (SELECT COALESCE(MAX(idx) + 1, 0)::BIGINT AS n FROM log_leaves) s "
            "LEFT JOIN generate_series(0, 62) AS b(level) ON ((s.n >> b.level) & 1) = 1 "
            "LEFT JOIN log_nodes l ON l.level = b.level AND l.idx = (s.n >> b.level) - 1"
        )
        rows = self._pg.fetchall()
        nodes = {(int(r[1]), int(r[2])): bytes(r[3]) for r in rows if r[1] is not None}
        return int(rows[0][0]), nodes

    def store_records(self, batch: BatchRow, records: Sequence[SealedRecord]) -> None:
        copy_rows(self._pg, record_rows(batch.batch_id, records))

    def erase_records(self, batch_ids: Sequence[str]) -> int:
        if not batch_ids:
            return 0
        self._pg.execute("DELETE FROM records WHERE batch_id = ANY(%s)", (list(batch_ids),))
        erased = int(self._pg.rowcount)
        if self._has_legacy():
            self._pg.execute("DELETE FROM legacy_plain_records WHERE batch_id = ANY(%s)", (list(batch_ids),))
            erased += int(self._pg.rowcount)
        return erased

    def iter_records(self, category: str, batch_ids: Sequence[str]) -> Iterator[StoredRecord]:
        for start in range(0, len(batch_ids), 500):
            chunk = list(batch_ids[start : start + 500])
            self._pg.execute(
                "SELECT r.batch_id, b.subject_digest, r.idx, r.body FROM records r JOIN batches b USING (batch_id) "
                "WHERE r.category = %s AND b.state = 'stored' AND r.batch_id = ANY(%s) ORDER BY r.batch_id, r.idx",
                (category, chunk),
            )
            for batch_id, subject_digest, index, body in self._pg.fetchall():
                yield StoredRecord(batch_id, subject_digest, category, int(index), bytes(body))

    def _has_legacy(self) -> bool:
        self._pg.execute("SELECT to_regclass('legacy_plain_records') IS NOT NULL")
        row = self._pg.fetchone()
        return bool(row and row[0])

    def legacy_batches(self) -> list[str]:
        """Stored batches whose records are still in clear; drops the legacy table once it is empty."""
        if not self._has_legacy():
            return []
        self._pg.execute(
            "SELECT DISTINCT l.batch_id FROM legacy_plain_records l JOIN batches b USING (batch_id) "
            "WHERE b.state = 'stored' ORDER BY l.batch_id"
        )
        ids = [str(r[0]) for r in self._pg.fetchall()]
        if not ids:
            self._pg.execute("DROP TABLE legacy_plain_records")  # its files go with it
        return ids

    def take_legacy_records(self, batch_id: str) -> list[dict[str, Any]]:
        self._pg.execute(
            "DELETE FROM legacy_plain_records WHERE batch_id = %s RETURNING body, start_ts, category", (batch_id,)
        )
        rows = sorted(self._pg.fetchall(), key=lambda r: (r[1], r[2]))
        return [dict(r[0]) for r in rows]


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable("backend_unavailable", f"PostgreSQL is unavailable: {type(exc).__name__}")


def copy_rows(cursor: psycopg.Cursor[Any], rows: Sequence[tuple[str, int, str, bytes]]) -> None:
    """Binary COPY of prepared record rows (body already sealed); the benchmark's baseline uses it too."""
    with cursor.copy(f"COPY records ({', '.join(RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(RECORD_TYPES))
        for row in rows:
            copy.write_row(row)


def record_rows(batch_id: str, records: Sequence[SealedRecord]) -> list[tuple[str, int, str, bytes]]:
    return [(batch_id, r.record_index, r.category, r.sealed) for r in records]


class PostgresBackend:
    """``StoreBackend`` over a psycopg connection pool, in its own schema (``schema``, default consentry)."""

    kind: BackendKind = "postgres"

    def __init__(self, dsn: str, *, schema: str = "consentry", min_size: int = 1, max_size: int = 8) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r} must be a lowercase SQL identifier")
        self.schema = schema
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        except psycopg.OperationalError as exc:
            raise Unavailable("backend_unavailable", f"cannot reach PostgreSQL: {exc}") from None
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            # The process id in application_name: pg_stat_activity tells which store process waits on what.
            kwargs={"options": f"-c search_path={schema}", "application_name": f"consentry-store-{os.getpid()}"},
            open=True,
            timeout=30.0,
        )
        self._migrate()

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            cur.execute("SELECT name FROM _migrations")
            done = {row[0] for row in cur.fetchall()}
            for migration in CATALOG_MIGRATIONS + POSTGRES_MIGRATIONS:
                if migration.name in done:
                    continue
                for statement in migration.sql.format(blob="BYTEA").split(";\n"):
                    if statement.strip():
                        cur.execute(statement)  # trusted DDL from this module, no parameters
                cur.execute("INSERT INTO _migrations (name, applied_at) VALUES (%s, now())", (migration.name,))

    @contextmanager
    def transaction(self) -> Iterator[PostgresTx]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield PostgresTx(cur)
        except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
            # Connection lost or server restarting: nothing committed; the client retries on 503.
            raise _unavailable(exc) from None

    def purge_old_keys(self) -> bool:
        """Rewrite the key table without its dead rows (the erased key, the keys under the old KEK), once per
        rotation; returns whether that is done, False when it must be retried later.

        VACUUM FULL writes a new file and unlinks the old one; it runs outside a transaction. It is put off
        while a transaction older than the rotation is open (a pg_dump runs in one for hours): PostgreSQL would
        copy the dead rows into the new file for it, and the rewrite's exclusive lock would wait behind the
        backup's, with every upload queued behind that. pg_wal keeps the old rows until recycled; they, and
        copies made meanwhile, are wrapped under a KEK that no longer exists.
        """
        try:
            return self._purge_old_keys()
        except psycopg.OperationalError as exc:
            raise _unavailable(exc) from None

    def _purge_old_keys(self) -> bool:
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                current = conn.execute("SELECT kek_id FROM records_kek WHERE one = 1").fetchone()
                purged = conn.execute("SELECT kek_id FROM subject_keys_purged WHERE one = 1").fetchone()
                if current is None or purged == current:
                    return True
                held = conn.execute(_OLDER_SNAPSHOTS).fetchone()
                if held is None or held[0]:
                    return False
                conn.execute(f"SET lock_timeout = '{_PURGE_LOCK_TIMEOUT}'")
                try:
                    conn.execute("VACUUM FULL subject_keys")
                except psycopg.errors.LockNotAvailable:
                    return False  # a reader holds the table: the next try
                finally:
                    conn.execute("RESET lock_timeout")
                conn.execute(
                    "INSERT INTO subject_keys_purged (one, kek_id) VALUES (1, %s) "
                    "ON CONFLICT (one) DO UPDATE SET kek_id = EXCLUDED.kek_id",
                    current,
                )
                return True
            finally:
                conn.autocommit = False

    def close(self) -> None:
        self._pool.close()

    def drop_schema(self) -> None:
        """Remove this backend's schema and everything in it (tests and benchmarks only)."""
        with self._pool.connection() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
