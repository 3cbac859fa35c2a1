"""The catalog SQL shared by both backends: named migrations and the ``StoreTx`` queries.

SQLite (the ``dir`` backend) and PostgreSQL run the same statements; they differ in the placeholder
style, the binary column type, row locking and how records are stored, which the subclasses supply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from store.backend import TERMINAL_STATES, BatchRow, DeviceRow, UploadView


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str  # may contain {blob}, formatted per dialect; statements separated by ";\n"


CATALOG_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_catalog",
        """
CREATE TABLE enroll_tokens (token_hash TEXT PRIMARY KEY, created BIGINT NOT NULL, expires BIGINT NOT NULL,
    used_at BIGINT, device_kid TEXT);
CREATE TABLE devices (kid TEXT PRIMARY KEY, public_key {blob} NOT NULL UNIQUE, enrolled_at BIGINT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0, last_manifest_hash TEXT NOT NULL,
    checkpoint_seq BIGINT, checkpoint_hash TEXT);
CREATE TABLE nonces (key TEXT NOT NULL, nonce TEXT NOT NULL, seen_at BIGINT NOT NULL, PRIMARY KEY (key, nonce));
CREATE INDEX nonces_seen ON nonces (seen_at);
CREATE TABLE subjects (subject_digest TEXT PRIMARY KEY, device_kid TEXT NOT NULL REFERENCES devices (kid));
CREATE TABLE batches (batch_id TEXT PRIMARY KEY, device_kid TEXT NOT NULL REFERENCES devices (kid),
    seq BIGINT NOT NULL, subject_digest TEXT NOT NULL, manifest_json TEXT, manifest_sha256 TEXT NOT NULL,
    state TEXT NOT NULL, submitted_at BIGINT NOT NULL, header_sha256 TEXT, stored_at BIGINT,
    receipt_json TEXT, record_count BIGINT NOT NULL DEFAULT 0, UNIQUE (device_kid, seq));
CREATE INDEX batches_state ON batches (state);
CREATE INDEX batches_subject ON batches (subject_digest);
CREATE TABLE approvals (batch_id TEXT NOT NULL REFERENCES batches (batch_id), steward_key TEXT NOT NULL,
    decision TEXT NOT NULL, approval_json TEXT NOT NULL, created BIGINT NOT NULL,
    PRIMARY KEY (batch_id, steward_key));
CREATE TABLE checkpoints (device_kid TEXT NOT NULL REFERENCES devices (kid), seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL, created BIGINT NOT NULL, received BIGINT NOT NULL, PRIMARY KEY (device_kid, seq));
CREATE TABLE log_leaves (idx BIGINT PRIMARY KEY, kind TEXT NOT NULL, time BIGINT NOT NULL, data {blob} NOT NULL);
CREATE TABLE log_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE log_heads (size BIGINT PRIMARY KEY, head_json TEXT NOT NULL);
CREATE TABLE erasures (request_id TEXT PRIMARY KEY, subject_digest TEXT NOT NULL, device_kid TEXT NOT NULL,
    receipt_json TEXT NOT NULL, created BIGINT NOT NULL);
CREATE TABLE exports (export_id TEXT PRIMARY KEY, created BIGINT NOT NULL, manifest_sha256 TEXT NOT NULL,
    contains_erased INTEGER NOT NULL DEFAULT 0);
CREATE TABLE export_subjects (export_id TEXT NOT NULL REFERENCES exports (export_id), subject_digest TEXT NOT NULL,
    PRIMARY KEY (export_id, subject_digest));
CREATE INDEX export_subjects_subject ON export_subjects (subject_digest)
""",
    ),
    Migration(
        "0002_subject_keys",
        # One data key per subject, wrapped by the store's records KEK; erasure deletes the row.
        """
CREATE TABLE subject_keys (subject_digest TEXT PRIMARY KEY, wrapped {blob} NOT NULL, created BIGINT NOT NULL)
""",
    ),
    Migration(
        "0003_records_kek",
        # Which records KEK the subject keys are wrapped under (store.records_kek), and whether an erasure
        # since asks for a new one.
        """
CREATE TABLE records_kek (one INTEGER PRIMARY KEY CHECK (one = 1), kek_id TEXT NOT NULL,
    rotation_due INTEGER NOT NULL DEFAULT 0)
""",
    ),
)

_BATCH_COLUMNS = (
    "batch_id, device_kid, seq, subject_digest, manifest_json, manifest_sha256, state, submitted_at, "
    "header_sha256, stored_at, receipt_json, record_count"
)
_UPDATABLE = {
    "state",
    "header_sha256",
    "stored_at",
    "receipt_json",
    "record_count",
    "manifest_json",
    "subject_digest",
}
_TABLES = {
    "devices",
    "enroll_tokens",
    "nonces",
    "subjects",
    "batches",
    "approvals",
    "checkpoints",
    "log_leaves",
    "log_nodes",
    "log_heads",
    "erasures",
    "exports",
    "export_subjects",
    "records",
    "subject_keys",
    "records_kek",
}


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlTx:
    """The catalog half of ``StoreTx``; subclasses add records storage and locking."""

    placeholder = "?"
    for_update = ""
    for_share = ""

    def __init__(self, cursor: Cursor) -> None:
        self._cur = cursor

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        self._cur.execute(sql, tuple(params))
        return self._cur

    def pipelined(self) -> AbstractContextManager[object]:
        """Statements whose results are not read may go to the database together (PostgresTx); SQLite runs
        in-process, so there is nothing to save."""
        return nullcontext()

    def query(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """One statement (``?`` placeholders) for modules that keep their own tables (store.fleet_db)."""
        return self._q(sql, params)

    # enrollment ------------------------------------------------------------------------------------------
    def insert_token(self, token_hash: str, created: int, expires: int) -> None:
        self._q(
            "INSERT INTO enroll_tokens (token_hash, created, expires) VALUES (?, ?, ?)",
            (token_hash, created, expires),
        )

    def consume_token(self, token_hash: str, device_kid: str, now: int) -> bool:
        cur = self._q(
            "UPDATE enroll_tokens SET used_at = ?, device_kid = ? WHERE token_hash = ? AND used_at IS NULL AND expires > ?",
            (now, device_kid, token_hash, now),
        )
        return cur.rowcount == 1

    def get_device(self, kid: str, *, lock: bool = False) -> DeviceRow | None:
        row = self._q(
            "SELECT kid, public_key, enrolled_at, last_seq, last_manifest_hash, checkpoint_seq, checkpoint_hash "
            "FROM devices WHERE kid = ?" + (self.for_update if lock else ""),
            (kid,),
        ).fetchone()
        if row is None:
            return None
        return DeviceRow(row[0], bytes(row[1]), row[2], row[3], row[4], row[5], row[6])

    def insert_device(self, device: DeviceRow) -> bool:
        cur = self._q(
            "INSERT INTO devices (kid, public_key, enrolled_at, last_seq, last_manifest_hash) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (device.kid, device.public_key, device.enrolled_at, device.last_seq, device.last_manifest_hash),
        )
        return cur.rowcount == 1

    def set_device_chain(self, kid: str, seq: int, manifest_hash: str) -> None:
        self._q("UPDATE devices SET last_seq = ?, last_manifest_hash = ? WHERE kid = ?", (seq, manifest_hash, kid))

    def set_device_checkpoint(self, kid: str, seq: int, head_hash: str) -> None:
        self._q("UPDATE devices SET checkpoint_seq = ?, checkpoint_hash = ? WHERE kid = ?", (seq, head_hash, kid))

    def use_nonce(self, key: str, nonce: str, now: int, forget_before: int) -> bool:
        self._q("DELETE FROM nonces WHERE seen_at < ?", (forget_before,))
        cur = self._q(
            "INSERT INTO nonces (key, nonce, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (key, nonce, now),
        )
        return cur.rowcount == 1

    # subjects, batches, approvals, checkpoints --------------------------------------------------------------
    def subject_owner(self, subject_digest: str) -> str | None:
        row = self._q("SELECT device_kid FROM subjects WHERE subject_digest = ?", (subject_digest,)).fetchone()
        return None if row is None else str(row[0])

    def insert_subject(self, subject_digest: str, device_kid: str) -> None:
        self._q(
            "INSERT INTO subjects (subject_digest, device_kid) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (subject_digest, device_kid),
        )

    @staticmethod
    def _batch(row: Any) -> BatchRow:
        return BatchRow(*row)

    def get_batch(self, batch_id: str, *, lock: bool = False) -> BatchRow | None:
        row = self._q(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?" + (self.for_update if lock else ""),
            (batch_id,),
        ).fetchone()
        return None if row is None else self._batch(row)

    def upload_view(self, batch_id: str, device_kid: str) -> UploadView | None:
        """The batch, the device, its open earlier batches and the subject's wrapped key, in one statement."""
        batch_columns = ", ".join("b." + c.strip() for c in _BATCH_COLUMNS.split(","))
        marks = ", ".join("?" for _ in TERMINAL_STATES)
        row = self._q(
            f"SELECT {batch_columns}, d.kid, d.public_key, d.enrolled_at, d.last_seq, d.last_manifest_hash, "
            "d.checkpoint_seq, d.checkpoint_hash, "
            "(SELECT COUNT(*) FROM batches o WHERE o.device_kid = ? AND o.seq < b.seq "
            f"AND o.state NOT IN ({marks})), "
            "(SELECT wrapped FROM subject_keys k WHERE k.subject_digest = b.subject_digest), "
            "(SELECT kek_id FROM records_kek WHERE one = 1) "
            "FROM batches b LEFT JOIN devices d ON d.kid = ? WHERE b.batch_id = ?",
            (device_kid, *TERMINAL_STATES, device_kid, batch_id),
        ).fetchone()
        if row is None:
            return None
        n = len(BatchRow.__dataclass_fields__)
        d = row[n : n + 7]
        device = None if d[0] is None else DeviceRow(d[0], bytes(d[1]), d[2], d[3], d[4], d[5], d[6])
        wrapped, kek = row[n + 8], row[n + 9]
        return UploadView(
            self._batch(row[:n]),
            device,
            int(row[n + 7]),
            None if wrapped is None else bytes(wrapped),
            None if kek is None else str(kek),
        )

    def insert_batch(self, batch: BatchRow) -> None:
        self._q(
            f"INSERT INTO batches ({_BATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                batch.batch_id,
                batch.device_kid,
                batch.seq,
                batch.subject_digest,
                batch.manifest_json,
                batch.manifest_sha256,
                batch.state,
                batch.submitted_at,
                batch.header_sha256,
                batch.stored_at,
                batch.receipt_json,
                batch.record_count,
            ),
        )

    def update_batch(self, batch_id: str, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown or not fields:
            raise ValueError(f"cannot update batch columns {sorted(unknown)}")
        names = sorted(fields)
        assignments = ", ".join(f"{name} = ?" for name in names)
        self._q(f"UPDATE batches SET {assignments} WHERE batch_id = ?", [fields[n] for n in names] + [batch_id])

    def open_batches_before(self, device_kid: str, seq: int) -> int:
        marks = ", ".join("?" for _ in TERMINAL_STATES)
        row = self._q(
            f"SELECT COUNT(*) FROM batches WHERE device_kid = ? AND seq < ? AND state NOT IN ({marks})",
            (device_kid, seq, *TERMINAL_STATES),
        ).fetchone()
        return int(row[0])

    def list_batches(self, states: Sequence[str], limit: int) -> list[BatchRow]:
        marks = ", ".join("?" for _ in states)
        rows = self._q(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE state IN ({marks}) ORDER BY submitted_at, device_kid, seq LIMIT ?",
            (*states, limit),
        ).fetchall()
        return [self._batch(r) for r in rows]

    def stored_batches(self) -> list[BatchRow]:
        rows = self._q(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE state = 'stored' ORDER BY batch_id").fetchall()
        return [self._batch(r) for r in rows]

    def batches_of_subject(self, subject_digest: str) -> list[BatchRow]:
        rows = self._q(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE subject_digest = ? ORDER BY device_kid, seq" + self.for_update,
            (subject_digest,),
        ).fetchall()
        return [self._batch(r) for r in rows]

    def approvals_json(self, batch_id: str) -> list[str]:
        rows = self._q(
            "SELECT approval_json FROM approvals WHERE batch_id = ? ORDER BY created, steward_key",
            (batch_id,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def insert_approval(self, batch_id: str, steward_key: str, decision: str, approval_json: str, created: int) -> bool:
        cur = self._q(
            "INSERT INTO approvals (batch_id, steward_key, decision, approval_json, created) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (batch_id, steward_key, decision, approval_json, created),
        )
        return cur.rowcount == 1

    def insert_checkpoint(self, device_kid: str, seq: int, head_hash: str, created: int, received: int) -> None:
        self._q(
            "INSERT INTO checkpoints (device_kid, seq, head_hash, created, received) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (device_kid, seq, head_hash, created, received),
        )

    def checkpoint_hash(self, device_kid: str, seq: int) -> str | None:
        row = self._q(
            "SELECT head_hash FROM checkpoints WHERE device_kid = ? AND seq = ?", (device_kid, seq)
        ).fetchone()
        return None if row is None else str(row[0])

    # subject data keys (store.record_keys) -----------------------------------------------------------
    def get_subject_key(self, subject_digest: str) -> bytes | None:
        row = self._q("SELECT wrapped FROM subject_keys WHERE subject_digest = ?", (subject_digest,)).fetchone()
        return None if row is None else bytes(row[0])

    def insert_subject_key(self, subject_digest: str, wrapped: bytes, created: int) -> bool:
        cur = self._q(
            "INSERT INTO subject_keys (subject_digest, wrapped, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (subject_digest, wrapped, created),
        )
        return cur.rowcount == 1

    def delete_subject_key(self, subject_digest: str) -> bool:
        cur = self._q("DELETE FROM subject_keys WHERE subject_digest = ?", (subject_digest,))
        return cur.rowcount == 1

    def get_wrapped_key(self, subject_digest: str) -> tuple[bytes | None, str | None]:
        """The subject's wrapped key and the id of the KEK it is wrapped under, read in one statement
        (one snapshot: a rotation committing meanwhile cannot pair a new key with an old id)."""
        row = self._q(
            "SELECT (SELECT wrapped FROM subject_keys WHERE subject_digest = ?), "
            "(SELECT kek_id FROM records_kek WHERE one = 1)",
            (subject_digest,),
        ).fetchone()
        return (None if row[0] is None else bytes(row[0])), (None if row[1] is None else str(row[1]))

    def subject_keys(self) -> list[tuple[str, bytes]]:
        rows = self._q("SELECT subject_digest, wrapped FROM subject_keys ORDER BY subject_digest").fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def rewrap_subject_keys(self, rows: Sequence[tuple[str, bytes]]) -> None:
        sql = "UPDATE subject_keys SET wrapped = ? WHERE subject_digest = ?".replace("?", self.placeholder)
        if rows:
            self._cur.executemany(sql, [(wrapped, digest) for digest, wrapped in rows])

    def records_kek(self, *, lock: bool = False, share: bool = False) -> tuple[str, bool] | None:
        """(id of the KEK the subject keys are wrapped under, whether a rotation is due); None before first use.

        ``share`` holds off a rotation until this transaction ends (a new subject key is being wrapped);
        ``lock`` is the rotation's own exclusive hold.
        """
        suffix = self.for_update if lock else self.for_share if share else ""
        row = self._q("SELECT kek_id, rotation_due FROM records_kek WHERE one = 1" + suffix).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def set_records_kek(self, kek_id: str, *, rotation_due: bool) -> None:
        self._q(
            "INSERT INTO records_kek (one, kek_id, rotation_due) VALUES (1, ?, ?) "
            "ON CONFLICT (one) DO UPDATE SET kek_id = excluded.kek_id, rotation_due = excluded.rotation_due",
            (kek_id, int(rotation_due)),
        )

    def mark_rotation_due(self) -> None:
        self._q("UPDATE records_kek SET rotation_due = 1")

    # audit log -----------------------------------------------------------------------------------------------
    def log_size(self) -> int:
        row = self._q("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves").fetchone()
        return int(row[0])

    def log_frontier(self) -> tuple[int, dict[tuple[int, int], bytes]]:
        """The log's size n and its frontier: the perfect subtrees that n decomposes into, one per set bit b of
        n, at ``(b, (n >> b) - 1)``. Appending leaf n needs no other node (``store.audit.append_entry``)."""
        size = self.log_size()
        return size, self.get_nodes(log_frontier_coords(size))

    def insert_leaf(self, index: int, kind: str, time: int, data: bytes) -> None:
        self._q("INSERT INTO log_leaves (idx, kind, time, data) VALUES (?, ?, ?, ?)", (index, kind, time, data))

    def insert_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        # One executemany, not a statement per node: PostgreSQL gets them in one round trip (pipelined).
        rows = list(nodes)
        if rows:
            sql = "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)".replace("?", self.placeholder)
            self._cur.executemany(sql, rows)

    def get_nodes(self, coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        wanted = sorted(set(coords))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), 200):
            chunk = wanted[start : start + 200]
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            params = [v for coord in chunk for v in coord]
            for level, index, digest in self._q(
                f"SELECT level, idx, hash FROM log_nodes WHERE {where}", params
            ).fetchall():
                found[(int(level), int(index))] = bytes(digest)
        return found

    def insert_head(self, size: int, head_json: str) -> None:
        self._q("INSERT INTO log_heads (size, head_json) VALUES (?, ?) ON CONFLICT DO NOTHING", (size, head_json))

    def get_head(self, size: int | None = None) -> str | None:
        if size is None:
            row = self._q("SELECT head_json FROM log_heads ORDER BY size DESC LIMIT 1").fetchone()
        else:
            row = self._q("SELECT head_json FROM log_heads WHERE size = ?", (size,)).fetchone()
        return None if row is None else str(row[0])

    def get_leaves(self, start: int, end: int) -> list[bytes]:
        rows = self._q("SELECT data FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)).fetchall()
        return [bytes(r[0]) for r in rows]

    # erasures and exports ------------------------------------------------------------------------------------
    def get_erasure(self, request_id: str) -> str | None:
        row = self._q("SELECT receipt_json FROM erasures WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else str(row[0])

    def insert_erasure(
        self, request_id: str, subject_digest: str, device_kid: str, receipt_json: str, created: int
    ) -> None:
        self._q(
            "INSERT INTO erasures (request_id, subject_digest, device_kid, receipt_json, created) VALUES (?, ?, ?, ?, ?)",
            (request_id, subject_digest, device_kid, receipt_json, created),
        )

    def insert_export(self, export_id: str, created: int, manifest_sha256: str, subject_digests: Sequence[str]) -> None:
        self._q(
            "INSERT INTO exports (export_id, created, manifest_sha256) VALUES (?, ?, ?)",
            (export_id, created, manifest_sha256),
        )
        for digest in sorted(set(subject_digests)):
            self._q("INSERT INTO export_subjects (export_id, subject_digest) VALUES (?, ?)", (export_id, digest))

    def mark_exports_with_subject(self, subject_digest: str) -> list[str]:
        rows = self._q(
            "SELECT export_id FROM export_subjects WHERE subject_digest = ? ORDER BY export_id",
            (subject_digest,),
        ).fetchall()
        ids = [str(r[0]) for r in rows]
        for export_id in ids:
            self._q("UPDATE exports SET contains_erased = 1 WHERE export_id = ?", (export_id,))
        return ids

    def export_flags(self) -> dict[str, bool]:
        rows = self._q("SELECT export_id, contains_erased FROM exports").fetchall()
        return {str(r[0]): bool(r[1]) for r in rows}

    def count_rows(self, table: str) -> int:
        if table not in _TABLES:
            raise ValueError(f"unknown table {table!r}")
        return int(self._q(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def log_frontier_coords(size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of the perfect subtrees a log of ``size`` leaves decomposes into."""
    return [(b, (size >> b) - 1) for b in range(size.bit_length()) if (size >> b) & 1]
