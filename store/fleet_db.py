"""The fleet's own tables (enrollment secrets, retired devices, latest heartbeats, operator keys), on both backends.

Kept out of the shared catalog migrations: ``ensure_tables`` creates them with ``CREATE TABLE IF NOT EXISTS``
(under an advisory lock on PostgreSQL, so several store processes may start at once). Every statement runs
through the store transaction's ``query`` (``?`` placeholders), inside the caller's transaction.

What is kept, and deliberately not: a device's *latest* heartbeat only (no history to mine), the hash
of each enrollment secret (never the secret), and which secret and label a device enrolled under.
Nothing here says anything about consent; the consent aggregates are computed from the catalog's
batches by ``store.fleet`` and never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from store.backend import StoreBackend

_PG_LOCK = 0x666C6565  # "flee": one advisory lock id for creating these tables

TABLES = """
CREATE TABLE IF NOT EXISTS fleet_enroll_secrets (secret_hash TEXT PRIMARY KEY, secret_id TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL, revoked_at BIGINT,
    per_hour INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_enrollments (device_kid TEXT PRIMARY KEY, secret_id TEXT NOT NULL,
    label TEXT NOT NULL, enrolled_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS fleet_enrollments_secret ON fleet_enrollments (secret_id, enrolled_at);
CREATE TABLE IF NOT EXISTS fleet_retired (device_kid TEXT PRIMARY KEY, retired_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_heartbeats (device_kid TEXT PRIMARY KEY, received_at BIGINT NOT NULL,
    seq BIGINT NOT NULL, sent_at BIGINT NOT NULL, agent_version TEXT NOT NULL, policy_digest TEXT NOT NULL,
    error_class TEXT NOT NULL, queue_depth INTEGER NOT NULL, clock_skew BIGINT NOT NULL, ledger_head TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_operators (kid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL, added BIGINT NOT NULL)
"""


class Query(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


@dataclass(frozen=True)
class SecretRow:
    secret_hash: str
    secret_id: str
    label: str
    created: int
    expires: int
    revoked_at: int | None
    per_hour: int


@dataclass(frozen=True)
class HeartbeatRow:
    device_kid: str
    received_at: int
    seq: int
    sent_at: int
    agent_version: str
    policy_digest: str
    error_class: str
    queue_depth: int
    clock_skew: int
    ledger_head: str


def ensure_tables(backend: StoreBackend) -> None:
    """Create the fleet tables if missing (idempotent; cheap when they exist)."""
    with backend.transaction() as tx:
        q: Query = tx  # type: ignore[assignment]
        if backend.kind == "postgres":
            q.query("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK,))
        for statement in TABLES.split(";\n"):
            if statement.strip():
                q.query(statement)


def as_query(tx: object) -> Query:
    """The store transaction, for the fleet statements (both backends' transactions have ``query``)."""
    return tx  # type: ignore[return-value]


# enrollment secrets -----------------------------------------------------------------------------------------
_SECRET_COLUMNS = "secret_hash, secret_id, label, created, expires, revoked_at, per_hour"


def insert_secret(q: Query, row: SecretRow) -> None:
    q.query(
        f"INSERT INTO fleet_enroll_secrets ({_SECRET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.secret_hash, row.secret_id, row.label, row.created, row.expires, row.revoked_at, row.per_hour),
    )


def secret_by_hash(q: Query, secret_hash: str, *, lock_clause: str = "") -> SecretRow | None:
    row = q.query(
        f"SELECT {_SECRET_COLUMNS} FROM fleet_enroll_secrets WHERE secret_hash = ?{lock_clause}", (secret_hash,)
    ).fetchone()
    return None if row is None else SecretRow(*row)


def list_secrets(q: Query) -> list[tuple[SecretRow, int]]:
    """Every secret with how many devices enrolled with it, newest first."""
    rows = q.query(f"SELECT {_SECRET_COLUMNS} FROM fleet_enroll_secrets ORDER BY created DESC, secret_id").fetchall()
    counts = dict(q.query("SELECT secret_id, COUNT(*) FROM fleet_enrollments GROUP BY secret_id").fetchall())
    return [(SecretRow(*r), int(counts.get(r[1], 0))) for r in rows]


def revoke_secret(q: Query, secret_id: str, now: int) -> bool:
    """True if a secret with this id exists (revoking twice keeps the first time)."""
    q.query(
        "UPDATE fleet_enroll_secrets SET revoked_at = ? WHERE secret_id = ? AND revoked_at IS NULL", (now, secret_id)
    )
    return q.query("SELECT 1 FROM fleet_enroll_secrets WHERE secret_id = ?", (secret_id,)).fetchone() is not None


def enrollments_since(q: Query, secret_id: str, since: int) -> int:
    row = q.query(
        "SELECT COUNT(*) FROM fleet_enrollments WHERE secret_id = ? AND enrolled_at > ?", (secret_id, since)
    ).fetchone()
    return int(row[0])


def insert_enrollment(q: Query, device_kid: str, secret_id: str, label: str, now: int) -> None:
    q.query(
        "INSERT INTO fleet_enrollments (device_kid, secret_id, label, enrolled_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (device_kid, secret_id, label, now),
    )


def labels(q: Query) -> dict[str, str]:
    """device kid -> the label of the secret it enrolled with (devices enrolled by token have none)."""
    return {str(k): str(v) for k, v in q.query("SELECT device_kid, label FROM fleet_enrollments").fetchall()}


# retired devices --------------------------------------------------------------------------------------------
def retire(q: Query, device_kid: str, now: int) -> None:
    q.query(
        "INSERT INTO fleet_retired (device_kid, retired_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (device_kid, now)
    )


def retired_at(q: Query, device_kid: str) -> int | None:
    row = q.query("SELECT retired_at FROM fleet_retired WHERE device_kid = ?", (device_kid,)).fetchone()
    return None if row is None else int(row[0])


def retired(q: Query) -> dict[str, int]:
    return {str(k): int(v) for k, v in q.query("SELECT device_kid, retired_at FROM fleet_retired").fetchall()}


# heartbeats -------------------------------------------------------------------------------------------------
_HB_COLUMNS = (
    "device_kid, received_at, seq, sent_at, agent_version, policy_digest, error_class, queue_depth, clock_skew, "
    "ledger_head"
)


def put_heartbeat(q: Query, row: HeartbeatRow) -> None:
    """Keep only the latest heartbeat of each device."""
    values = (
        row.device_kid,
        row.received_at,
        row.seq,
        row.sent_at,
        row.agent_version,
        row.policy_digest,
        row.error_class,
        row.queue_depth,
        row.clock_skew,
        row.ledger_head,
    )
    q.query(
        f"INSERT INTO fleet_heartbeats ({_HB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (device_kid) DO UPDATE SET received_at = excluded.received_at, seq = excluded.seq, "
        "sent_at = excluded.sent_at, agent_version = excluded.agent_version, "
        "policy_digest = excluded.policy_digest, error_class = excluded.error_class, "
        "queue_depth = excluded.queue_depth, clock_skew = excluded.clock_skew, ledger_head = excluded.ledger_head",
        values,
    )


def heartbeats(q: Query) -> dict[str, HeartbeatRow]:
    rows = q.query(f"SELECT {_HB_COLUMNS} FROM fleet_heartbeats").fetchall()
    return {str(r[0]): HeartbeatRow(*r) for r in rows}


# operators --------------------------------------------------------------------------------------------------
def add_operator(q: Query, kid: str, name: str, public_key_b64: str, now: int) -> None:
    q.query(
        "INSERT INTO fleet_operators (kid, name, public_key, added) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kid) DO UPDATE SET name = excluded.name",
        (kid, name, public_key_b64, now),
    )


def operator(q: Query, kid: str) -> tuple[str, str] | None:
    """(name, public key base64) of the operator key ``kid``, if IT added it."""
    row = q.query("SELECT name, public_key FROM fleet_operators WHERE kid = ?", (kid,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))
