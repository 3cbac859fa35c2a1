"""The release tables, in the store's own database (SQLite for ``dir``, PostgreSQL for ``postgres``).

Kept apart from ``StoreBackend``'s protocol: each function runs SQL in the caller's transaction, through
the backend's own statement helper, so the rows commit or roll back with everything else the step does
(the audit-log entry included). ``ensure_tables`` is idempotent (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store.backend import StoreTx

_TABLES = (
    "CREATE TABLE IF NOT EXISTS release_requests (release_id TEXT PRIMARY KEY, consumer_key TEXT NOT NULL, "
    "request_json TEXT NOT NULL, manifest_json TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, state TEXT NOT NULL, "
    "created BIGINT NOT NULL, built_at BIGINT, log_json TEXT)",
    "CREATE TABLE IF NOT EXISTS release_decisions (release_id TEXT NOT NULL, steward_key TEXT NOT NULL, "
    "decision TEXT NOT NULL, approval_json TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (release_id, steward_key))",
    "CREATE TABLE IF NOT EXISTS release_subjects (release_id TEXT NOT NULL, subject_digest TEXT NOT NULL, "
    "PRIMARY KEY (release_id, subject_digest))",
    "CREATE TABLE IF NOT EXISTS release_runs (run_id TEXT PRIMARY KEY, release_id TEXT NOT NULL, run_name TEXT NOT NULL, "
    "consumer_key TEXT NOT NULL, use_json TEXT NOT NULL, created BIGINT NOT NULL, flagged_at BIGINT, flag TEXT)",
)


def _q(tx: StoreTx, sql: str, params: Sequence[Any] = ()) -> Any:
    # SqlTx._q adapts "?" placeholders to the backend's; both backends' transactions are SqlTx.
    return tx._q(sql, params)  # type: ignore[attr-defined]


def ensure_tables(tx: StoreTx) -> None:
    for statement in _TABLES:
        _q(tx, statement)


@dataclass(frozen=True)
class ReleaseRow:
    release_id: str
    consumer_key: str
    request_json: str
    manifest_json: str
    manifest_sha256: str
    state: str  # review | approved | rejected | built
    created: int
    built_at: int | None


_COLUMNS = "release_id, consumer_key, request_json, manifest_json, manifest_sha256, state, created, built_at"


def insert_release(tx: StoreTx, row: ReleaseRow) -> bool:
    cur = _q(
        tx,
        f"INSERT INTO release_requests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            row.release_id,
            row.consumer_key,
            row.request_json,
            row.manifest_json,
            row.manifest_sha256,
            row.state,
            row.created,
            row.built_at,
        ),
    )
    return bool(cur.rowcount == 1)


def set_request_log(tx: StoreTx, release_id: str, log_json: str) -> None:
    """The request's audit-log receipt: stewards verify the manifest they are shown against it."""
    _q(tx, "UPDATE release_requests SET log_json = ? WHERE release_id = ?", (log_json, release_id))


def request_log(tx: StoreTx, release_id: str) -> str | None:
    row = _q(tx, "SELECT log_json FROM release_requests WHERE release_id = ?", (release_id,)).fetchone()
    return None if row is None else row[0]


def get_release(tx: StoreTx, release_id: str) -> ReleaseRow | None:
    row = _q(tx, f"SELECT {_COLUMNS} FROM release_requests WHERE release_id = ?", (release_id,)).fetchone()
    return ReleaseRow(*row) if row is not None else None


def list_releases(tx: StoreTx) -> list[ReleaseRow]:
    return [ReleaseRow(*r) for r in _q(tx, f"SELECT {_COLUMNS} FROM release_requests ORDER BY created").fetchall()]


def set_release_state(tx: StoreTx, release_id: str, state: str, *, built_at: int | None = None) -> None:
    _q(tx, "UPDATE release_requests SET state = ?, built_at = ? WHERE release_id = ?", (state, built_at, release_id))


def insert_decision(
    tx: StoreTx, release_id: str, steward_key: str, decision: str, approval_json: str, now: int
) -> bool:
    cur = _q(
        tx,
        "INSERT INTO release_decisions (release_id, steward_key, decision, approval_json, created) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (release_id, steward_key, decision, approval_json, now),
    )
    return bool(cur.rowcount == 1)


def decisions_json(tx: StoreTx, release_id: str) -> list[str]:
    rows = _q(tx, "SELECT approval_json FROM release_decisions WHERE release_id = ? ORDER BY created", (release_id,))
    return [r[0] for r in rows.fetchall()]


def insert_subjects(tx: StoreTx, release_id: str, subject_digests: Sequence[str]) -> None:
    for digest in sorted(set(subject_digests)):
        _q(
            tx,
            "INSERT INTO release_subjects (release_id, subject_digest) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (release_id, digest),
        )


def releases_with_subject(tx: StoreTx, subject_digest: str) -> list[str]:
    rows = _q(
        tx, "SELECT release_id FROM release_subjects WHERE subject_digest = ? ORDER BY release_id", (subject_digest,)
    )
    return [r[0] for r in rows.fetchall()]


def forget_subject(tx: StoreTx, subject_digest: str) -> None:
    """After an erasure the link from release to subject is not kept either (the runs keep their flag)."""
    _q(tx, "DELETE FROM release_subjects WHERE subject_digest = ?", (subject_digest,))


@dataclass(frozen=True)
class RunRow:
    run_id: str
    release_id: str
    run_name: str
    consumer_key: str
    created: int
    flagged_at: int | None
    flag: str | None


def insert_run(
    tx: StoreTx, run_id: str, release_id: str, run_name: str, consumer_key: str, use_json: str, now: int
) -> bool:
    cur = _q(
        tx,
        "INSERT INTO release_runs (run_id, release_id, run_name, consumer_key, use_json, created) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (run_id, release_id, run_name, consumer_key, use_json, now),
    )
    return bool(cur.rowcount == 1)


def list_runs(tx: StoreTx) -> list[RunRow]:
    rows = _q(
        tx,
        "SELECT run_id, release_id, run_name, consumer_key, created, flagged_at, flag FROM release_runs ORDER BY created, run_id",
    ).fetchall()
    return [RunRow(*r) for r in rows]


def flag_runs(tx: StoreTx, release_ids: Sequence[str], flag: str, now: int) -> list[RunRow]:
    """Mark every run of ``release_ids`` (each once: the first flag's time is kept) and return the runs touched."""
    touched = [r for r in list_runs(tx) if r.release_id in set(release_ids)]
    for run in touched:
        _q(
            tx,
            "UPDATE release_runs SET flagged_at = COALESCE(flagged_at, ?), flag = ? WHERE run_id = ?",
            (now, flag, run.run_id),
        )
    return touched


def count(tx: StoreTx, table: str) -> int:
    """Rows in one of the release tables (tests and status compare these)."""
    if table not in {"release_requests", "release_decisions", "release_subjects", "release_runs"}:
        raise ValueError(f"unknown release table {table!r}")
    return int(_q(tx, f"SELECT count(*) FROM {table}").fetchone()[0])
