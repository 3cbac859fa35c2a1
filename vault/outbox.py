"""The outbox: what this computer owes the store or knows about it, kept in the vault until acknowledged.

The one module (besides a batch's own life cycle in ``vault/batches.py``) that reads and writes the
vault's release-path state, so the agent never runs SQL on the vault:

- the store this device enrolled with, and the last ledger checkpoint that store witnessed (``meta``);
- signed erasure requests for the store (``erasure_requests``): queued, receipted or failed;
- the batches as stored (``BatchInfo``, ``get_batch``, ``list_batches``) and the count of pending
  erasures, read by ``status`` and ``batches list`` (plain dataclasses, no pydantic: read commands must
  start fast). A batch's life cycle itself (sealing, veto, release, shipping) is ``vault/batches.py``.

Every write is its own ``BEGIN IMMEDIATE`` transaction unless its docstring says otherwise.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from protocol.errors import VaultError
from protocol.timeutil import iso

if TYPE_CHECKING:
    from vault.vault import Vault

META_URL = "store_url"
META_STORE_KEY = "store_public_key"
META_LOG_KEY = "store_log_key"
META_ENROLLED_AT = "enrolled_at"
META_WITNESSED = "store_witnessed_seq"  # the last ledger checkpoint the store acknowledged


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class Enrollment(NamedTuple):
    """The store this device enrolled with; keys base64-encoded, as the machine policy writes them."""

    url: str
    store_public_key: str
    log_public_key: str


class QueuedErasure(NamedTuple):
    """A signed erasure request for the store, and what became of it."""

    request_id: str
    created: str
    scope: str
    request: str  # the signed ErasureRequest, JSON, exactly as it is sent
    receipt: dict[str, Any] | None  # the store's verified ErasureReceipt; None while unsent
    last_error: str | None


BatchState = Literal[
    "held", "released", "submitting", "submitted", "approved", "shipped", "vetoed", "rejected", "withdrawing", "erased"
]


class BatchInfo(NamedTuple):
    """A batch as the vault records it (read from its own table: a dataclass, not a boundary model)."""

    batch_id: str
    state: BatchState
    created: str
    hold_until: str
    period_start: int
    period_end: int
    record_counts: dict[str, int]
    payload_sha256: str
    privacy_checks: list[dict[str, Any]]
    seq: int | None = None
    manifest_sha256: str | None = None
    receipt: dict[str, Any] | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


def _set_meta(vault: Vault, values: dict[str, str]) -> None:
    with vault.transaction():
        vault.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
    vault.meta = {**vault.meta, **values}


def record_enrollment(vault: Vault, enrollment: Enrollment, now: datetime) -> None:
    _set_meta(
        vault,
        {
            META_URL: enrollment.url,
            META_STORE_KEY: enrollment.store_public_key,
            META_LOG_KEY: enrollment.log_public_key,
            META_ENROLLED_AT: iso(now),
        },
    )


def enrollment(vault: Vault) -> Enrollment | None:
    """The store this device enrolled with; None if it never enrolled."""
    url, store_key, log_key = (vault.meta.get(k) for k in (META_URL, META_STORE_KEY, META_LOG_KEY))
    if url is None or store_key is None or log_key is None:
        return None
    return Enrollment(url=url, store_public_key=store_key, log_public_key=log_key)


def witnessed_seq(vault: Vault) -> int | None:
    """The ledger checkpoint the store last acknowledged; None before the first."""
    value = vault.meta.get(META_WITNESSED, "")
    return int(value) if value.isdigit() else None


def record_witnessed(vault: Vault, seq: int) -> None:
    _set_meta(vault, {META_WITNESSED: str(seq)})


# -- erasure requests ------------------------------------------------------------------------------


def queue_erasure(vault: Vault, scope: str, now: datetime, subject: str | None = None) -> str:
    """Record a signed request that the store erase ``subject`` (default: the vault's first); its id.

    The request and its ledger entry are one transaction. It is sent by the next sync.
    """
    from protocol.erasure import sign_erasure  # only erasing pays for the wire format

    request_id = uuid.uuid4().hex
    request = sign_erasure(vault.device_key, request_id, subject or vault.subject, created=int(now.timestamp()))
    with vault.transaction():
        vault.db.execute(
            "INSERT INTO erasure_requests (request_id, created, scope, request) VALUES (?, ?, ?, ?)",
            (request_id, iso(now), scope, request.model_dump_json()),
        )
        vault.ledger.append("erasure-requested", {"request_id": request_id, "scope": scope}, now)
    return request_id


_ERASURE_COLUMNS = "request_id, created, scope, request, receipt, last_error"


def _erasure(row: tuple[Any, ...]) -> QueuedErasure:
    return QueuedErasure(
        request_id=str(row[0]),
        created=str(row[1]),
        scope=str(row[2]),
        request=str(row[3]),
        receipt=json.loads(row[4]) if row[4] else None,
        last_error=row[5],
    )


def erasure_requests(vault: Vault, *, unsent_only: bool = False) -> list[QueuedErasure]:
    """The erasure requests this vault queued, oldest first (``unsent_only``: those the store has not
    acknowledged yet, in the order the next sync sends them)."""
    where = " WHERE receipt IS NULL" if unsent_only else ""
    rows = vault.db.execute(f"SELECT {_ERASURE_COLUMNS} FROM erasure_requests{where} ORDER BY created, rowid")
    return [_erasure(row) for row in rows.fetchall()]


def pending_erasure_count(vault: Vault) -> int:
    (count,) = vault.db.execute("SELECT COUNT(*) FROM erasure_requests WHERE receipt IS NULL").fetchone()
    return int(count)


def record_erasure_receipt(vault: Vault, request_id: str, receipt: dict[str, Any]) -> None:
    """The store's verified receipt: the request is done (and its last error cleared)."""
    with vault.transaction():
        vault.db.execute(
            "UPDATE erasure_requests SET receipt = ?, last_error = NULL WHERE request_id = ?",
            (json.dumps(receipt, sort_keys=True), request_id),
        )


def record_erasure_error(vault: Vault, request_id: str, message: str) -> None:
    """Why the request could not be sent (it stays queued)."""
    with vault.transaction():
        vault.db.execute("UPDATE erasure_requests SET last_error = ? WHERE request_id = ?", (message, request_id))


# -- batches, as stored -----------------------------------------------------------------------------

_BATCH_COLUMNS = (
    "batch_id, state, created, hold_until, period_start, period_end, record_counts, payload_sha256,"
    " privacy_checks, seq, manifest_sha256, receipt, last_error"
)


def _batch(row: tuple[Any, ...]) -> BatchInfo:
    return BatchInfo(
        batch_id=row[0], state=row[1], created=row[2], hold_until=row[3], period_start=row[4], period_end=row[5],
        record_counts=json.loads(row[6]), payload_sha256=row[7], privacy_checks=json.loads(row[8]), seq=row[9],
        manifest_sha256=row[10], receipt=json.loads(row[11]) if row[11] else None, last_error=row[12],
    )  # fmt: skip


def get_batch(vault: Vault, batch_id: str) -> BatchInfo:
    row = vault.db.execute(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None:
        raise VaultError(f"there is no batch {batch_id!r}; list them with: consentry batches list")
    return _batch(row)


def list_batches(vault: Vault, states: tuple[str, ...] | None = None) -> list[BatchInfo]:
    """Batches in the order they were sealed (only those in ``states``, if given)."""
    sql = f"SELECT {_BATCH_COLUMNS} FROM batches"
    if states:
        sql += f" WHERE state IN ({', '.join('?' * len(states))})"
    return [_batch(row) for row in vault.db.execute(sql + " ORDER BY created", states or ())]
