"""Where the store keeps review sets: frozen members, set approvals and each batch's inclusion.

Its own tables (``CREATE TABLE IF NOT EXISTS``, the same SQL on SQLite and PostgreSQL), created when the
store starts, so the shared catalog migrations and ``StoreTx`` stay as they are. Queries run through the
transaction's own cursor (``SqlTx._q``), inside the caller's transaction and locks.

    review_sets          set_id, created, created_by (steward kid), key_json (the group), root, size
    review_set_members   (set_id, leaf_index) -> batch_id, manifest_sha256, in the order frozen
    review_set_approvals (set_id, steward_key) -> the signed SetApproval
    review_set_rejections (set_id, steward_key) -> the signed SetRejection (its reason included)
    set_inclusions       (batch_id, steward_key) -> one batch's decision under a set: its SetInclusion
                         (approval) or SetRejectionInclusion (rejection); one per steward and batch
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from protocol.approval import Approval, CountedDecision
from protocol.review_set import SetApproval, SetInclusion, SetMember, SetRejection, SetRejectionInclusion
from store.backend import StoreBackend, StoreTx

TABLES = (
    "CREATE TABLE IF NOT EXISTS review_sets (set_id TEXT PRIMARY KEY, created BIGINT NOT NULL, "
    "created_by TEXT NOT NULL, key_json TEXT NOT NULL, root TEXT NOT NULL, size BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS review_set_members (set_id TEXT NOT NULL, leaf_index BIGINT NOT NULL, "
    "batch_id TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, PRIMARY KEY (set_id, leaf_index))",
    "CREATE TABLE IF NOT EXISTS review_set_approvals (set_id TEXT NOT NULL, steward_key TEXT NOT NULL, "
    "approval_json TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (set_id, steward_key))",
    "CREATE TABLE IF NOT EXISTS review_set_rejections (set_id TEXT NOT NULL, steward_key TEXT NOT NULL, "
    "rejection_json TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (set_id, steward_key))",
    "CREATE TABLE IF NOT EXISTS set_inclusions (batch_id TEXT NOT NULL, steward_key TEXT NOT NULL, "
    "set_id TEXT NOT NULL, inclusion_json TEXT NOT NULL, created BIGINT NOT NULL, "
    "PRIMARY KEY (batch_id, steward_key))",
)


def _q(tx: StoreTx, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run ``sql`` on the transaction's cursor (both backends' transactions are ``SqlTx``)."""
    return tx._q(sql, params)  # type: ignore[attr-defined]


def ensure_tables(backend: StoreBackend) -> None:
    with backend.transaction() as tx:
        for statement in TABLES:
            _q(tx, statement)


def insert_set(tx: StoreTx, set_id: str, created: int, created_by: str, key_json: str, root: str,
               members: Sequence[SetMember]) -> None:  # fmt: skip
    _q(
        tx,
        "INSERT INTO review_sets (set_id, created, created_by, key_json, root, size) VALUES (?, ?, ?, ?, ?, ?)",
        (set_id, created, created_by, key_json, root, len(members)),
    )
    for i, m in enumerate(members):
        _q(
            tx,
            "INSERT INTO review_set_members (set_id, leaf_index, batch_id, manifest_sha256) VALUES (?, ?, ?, ?)",
            (set_id, i, m.batch_id, m.manifest_sha256),
        )


def get_set(tx: StoreTx, set_id: str, *, lock: bool = False) -> tuple[int, str, str, str] | None:
    """(created, created_by, key_json, root) of a set, or None; ``lock`` orders approvals of one set."""
    suffix = str(getattr(tx, "for_update", "")) if lock else ""  # SQLite: BEGIN IMMEDIATE already serialises
    row = _q(
        tx, "SELECT created, created_by, key_json, root FROM review_sets WHERE set_id = ?" + suffix, (set_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))


def members(tx: StoreTx, set_id: str) -> list[SetMember]:
    rows = _q(
        tx,
        "SELECT batch_id, manifest_sha256 FROM review_set_members WHERE set_id = ? ORDER BY leaf_index",
        (set_id,),
    ).fetchall()
    return [SetMember(batch_id=str(r[0]), manifest_sha256=str(r[1])) for r in rows]


def set_approvals(tx: StoreTx, set_id: str) -> list[SetApproval]:
    rows = _q(
        tx, "SELECT approval_json FROM review_set_approvals WHERE set_id = ? ORDER BY created, steward_key", (set_id,)
    ).fetchall()
    return [SetApproval.model_validate_json(r[0]) for r in rows]


def insert_set_approval(tx: StoreTx, approval: SetApproval, now: int) -> bool:
    cur = _q(
        tx,
        "INSERT INTO review_set_approvals (set_id, steward_key, approval_json, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (approval.set_id, approval.steward_key, approval.model_dump_json(), now),
    )
    return int(cur.rowcount) == 1


def set_rejections(tx: StoreTx, set_id: str) -> list[SetRejection]:
    rows = _q(
        tx, "SELECT rejection_json FROM review_set_rejections WHERE set_id = ? ORDER BY created, steward_key", (set_id,)
    ).fetchall()
    return [SetRejection.model_validate_json(r[0]) for r in rows]


def insert_set_rejection(tx: StoreTx, rejection: SetRejection, now: int) -> bool:
    cur = _q(
        tx,
        "INSERT INTO review_set_rejections (set_id, steward_key, rejection_json, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (rejection.set_id, rejection.steward_key, rejection.model_dump_json(), now),
    )
    return int(cur.rowcount) == 1


def insert_inclusion(tx: StoreTx, inclusion: SetInclusion | SetRejectionInclusion, now: int) -> bool:
    set_id = inclusion.approval.set_id if isinstance(inclusion, SetInclusion) else inclusion.rejection.set_id
    cur = _q(
        tx,
        "INSERT INTO set_inclusions (batch_id, steward_key, set_id, inclusion_json, created) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (inclusion.batch_id, inclusion.steward_key, set_id, inclusion.model_dump_json(), now),
    )
    return int(cur.rowcount) == 1


def _inclusion(raw: str) -> SetInclusion | SetRejectionInclusion:
    """A stored set decision: a rejection carries its ``rejection``, an approval its ``approval``."""
    data = json.loads(raw)
    if "rejection" in data:
        return SetRejectionInclusion.model_validate(data)
    return SetInclusion.model_validate(data)


def inclusions_of(tx: StoreTx, batch_id: str) -> list[SetInclusion | SetRejectionInclusion]:
    rows = _q(
        tx, "SELECT inclusion_json FROM set_inclusions WHERE batch_id = ? ORDER BY created, steward_key", (batch_id,)
    ).fetchall()
    return [_inclusion(str(r[0])) for r in rows]


def decisions(tx: StoreTx, batch_id: str) -> list[CountedDecision]:
    """Every decision on a batch that ``tally`` counts: single approvals, then set inclusions."""
    rows = _q(  # one statement for both tables, in the order approvals_json and inclusions_of give
        tx,
        "SELECT 0 AS src, approval_json AS decision, created, steward_key FROM approvals WHERE batch_id = ? "
        "UNION ALL SELECT 1, inclusion_json, created, steward_key FROM set_inclusions WHERE batch_id = ? "
        "ORDER BY src, created, steward_key",
        (batch_id, batch_id),
    ).fetchall()
    return [Approval.model_validate_json(r[1]) if r[0] == 0 else _inclusion(str(r[1])) for r in rows]


def decision_count(tx: StoreTx, batch_id: str) -> int:
    """How many decisions ``decisions`` would return, in one statement. Decisions are only ever inserted,
    never updated or deleted, so an unchanged count means unchanged decisions (upload's re-check)."""
    row = _q(
        tx,
        "SELECT (SELECT COUNT(*) FROM approvals WHERE batch_id = ?) + "
        "(SELECT COUNT(*) FROM set_inclusions WHERE batch_id = ?)",
        (batch_id, batch_id),
    ).fetchone()
    return int(row[0])


def recent_manifests_latest(tx: StoreTx, limit: int) -> list[str]:
    """Manifests (JSON) of the ``limit`` most recently submitted batches that still have one."""
    rows = _q(
        tx,
        "SELECT manifest_json FROM batches WHERE manifest_json IS NOT NULL AND state NOT IN ('erased', 'withdrawn') "
        "ORDER BY submitted_at DESC, batch_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]
