"""The consent ledger: an append-only, hash-chained log of every consent and release event.

    hash_i = SHA-256(b"consentry-ledger-v1\\x00" || hash_{i-1} || canonical_json(body_i))

with ``hash_0``'s predecessor 32 zero bytes and ``body_i = {"v": 1, "seq", "kind", "at", ...fields}``
(``seq`` inside the body, so entries cannot be reordered). Signed checkpoints bind a head to the
device key::

    signature = Ed25519(device_key, b"consentry-checkpoint-v1\\x00" || canonical_json(checkpoint_body))
    checkpoint_body = {"v": 1, "seq", "head_hash", "device_kid", "at"}

Checkpoints travel with every batch so the store witnesses the chain. ``verify`` recomputes every
link and names the first entry that does not match.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from vault.canonical import canonical_json
from vault.errors import LedgerBroken
from vault.modelconfig import BOUNDARY
from vault.signing import SigningKey, is_valid_signature, verify_signature
from vault.timeutil import iso

LEDGER_VERSION = 1
_DOMAIN = b"consentry-ledger-v1\x00"
_CHECKPOINT_DOMAIN = b"consentry-checkpoint-v1\x00"
GENESIS_HASH = "00" * 32

# Every kind of entry the ledger holds. Anything else is a programming error.
KINDS = frozenset(
    {
        "vault-created",
        "grant",
        "revoke",
        "erase",
        "pause",
        "resume",
        "policy-changed",
        "batch-sealed",
        "batch-vetoed",
        "batch-released",
        "batch-approved",
        "batch-rejected",
        "batch-shipped",
        "key-shredded",
        "erasure-requested",
        "excluded-apps-changed",
    }
)


@dataclass(frozen=True)
class LedgerEntry:
    """One stored entry; ``verify`` is what establishes that it is genuine."""

    seq: int
    kind: str
    at: str
    body: dict[str, Any]
    prev_hash: str
    hash: str


class Checkpoint(BaseModel):
    """A signed statement by the device that its ledger had head ``head_hash`` at ``seq``."""

    model_config = BOUNDARY

    v: int = LEDGER_VERSION
    seq: int
    head_hash: str
    device_kid: str
    at: str
    signature: str  # hex

    def signed_bytes(self) -> bytes:
        return checkpoint_bytes(self.seq, self.head_hash, self.device_kid, self.at)

    def verify(self, device_public_key: bytes) -> None:
        """Raise InvalidRecord unless the signature is the device's over this checkpoint."""
        verify_signature(device_public_key, self.signed_bytes(), bytes.fromhex(self.signature))


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None


def checkpoint_bytes(seq: int, head_hash: str, device_kid: str, at: str) -> bytes:
    body = {"v": LEDGER_VERSION, "seq": seq, "head_hash": head_hash, "device_kid": device_kid, "at": at}
    return _CHECKPOINT_DOMAIN + canonical_json(body)


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(_DOMAIN + bytes.fromhex(prev_hash) + canonical_json(body)).hexdigest()


class Ledger:
    """The ledger table of one vault. Appends must run inside the caller's write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def head(self) -> tuple[int, str]:
        row = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def append(self, kind: str, fields: dict[str, Any], now: datetime) -> LedgerEntry:
        """Append one entry. The caller holds a write transaction (BEGIN IMMEDIATE)."""
        if kind not in KINDS:
            raise ValueError(f"unknown ledger entry kind {kind!r}")
        reserved = {"v", "seq", "kind", "at"} & fields.keys()
        if reserved:
            raise ValueError(f"ledger fields may not use the reserved names {sorted(reserved)}")
        seq, prev = self.head()
        at = iso(now)
        body = {"v": LEDGER_VERSION, "seq": seq + 1, "kind": kind, "at": at, **fields}
        digest = chain_hash(prev, body)
        self._conn.execute(
            "INSERT INTO ledger (seq, kind, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq + 1, kind, at, canonical_json(body).decode("utf-8"), prev, digest),
        )
        return LedgerEntry(seq=seq + 1, kind=kind, at=at, body=body, prev_hash=prev, hash=digest)

    def entries(self, kinds: tuple[str, ...] | None = None) -> Iterator[LedgerEntry]:
        sql = "SELECT seq, kind, at, body, prev_hash, hash FROM ledger"
        params: tuple[str, ...] = ()
        if kinds:
            sql += f" WHERE kind IN ({', '.join('?' * len(kinds))})"
            params = kinds
        for seq, kind, at, body, prev, digest in self._conn.execute(sql + " ORDER BY seq", params):
            yield LedgerEntry(seq=seq, kind=kind, at=at, body=json.loads(body), prev_hash=prev, hash=digest)

    def verify(self, device_public_key: bytes | None = None) -> VerifyReport:
        """Recompute the chain (and check signed checkpoints); report the first broken entry."""
        prev = GENESIS_HASH
        count = 0
        hashes: dict[int, str] = {}
        rows = self._conn.execute("SELECT seq, kind, at, body, prev_hash, hash FROM ledger ORDER BY seq")
        for seq, kind, at, body_text, stored_prev, stored_hash in rows:
            count += 1
            problem = _entry_problem(seq, count, kind, at, body_text, stored_prev, stored_hash, prev)
            if problem is not None:
                return VerifyReport(ok=False, entries=count, head_hash=prev, first_broken_seq=seq, reason=problem)
            prev = stored_hash
            hashes[seq] = stored_hash
        if device_public_key is not None:
            for cp in self.checkpoints():
                problem = None
                if hashes.get(cp.seq) != cp.head_hash:
                    problem = f"signed checkpoint at entry {cp.seq} names a different head than the ledger holds"
                elif not _signature_ok(cp, device_public_key):
                    problem = f"the signature of the checkpoint at entry {cp.seq} does not verify"
                if problem is not None:
                    return VerifyReport(
                        ok=False, entries=count, head_hash=prev, first_broken_seq=cp.seq, reason=problem
                    )
        return VerifyReport(ok=True, entries=count, head_hash=prev)

    def require_valid(self, device_public_key: bytes | None = None) -> VerifyReport:
        report = self.verify(device_public_key)
        if not report.ok:
            raise LedgerBroken(f"consent ledger broken at entry {report.first_broken_seq}: {report.reason}")
        return report

    def checkpoint(self, key: SigningKey, now: datetime) -> Checkpoint:
        """Sign the current head and keep the checkpoint (caller holds a write transaction)."""
        seq, head = self.head()
        at = iso(now)
        signature = key.sign(checkpoint_bytes(seq, head, key.kid, at)).hex()
        self._conn.execute(
            "INSERT OR REPLACE INTO checkpoints (seq, head_hash, at, device_kid, signature) VALUES (?, ?, ?, ?, ?)",
            (seq, head, at, key.kid, signature),
        )
        return Checkpoint(seq=seq, head_hash=head, device_kid=key.kid, at=at, signature=signature)

    def checkpoints(self) -> list[Checkpoint]:
        rows = self._conn.execute("SELECT seq, head_hash, device_kid, at, signature FROM checkpoints ORDER BY seq")
        return [Checkpoint(seq=s, head_hash=h, device_kid=k, at=a, signature=sig) for s, h, k, a, sig in rows]


def _entry_problem(
    seq: int, expected_seq: int, kind: str, at: str, body_text: str, stored_prev: str, stored_hash: str, prev: str
) -> str | None:
    """Why one stored entry does not continue the chain ending in ``prev``, or None when it does."""
    if seq != expected_seq:
        return f"entry {seq} is out of sequence (expected {expected_seq}); an entry is missing"
    try:
        body = json.loads(body_text)
    except ValueError:
        return "the entry's body is not valid JSON"
    if not isinstance(body, dict) or body.get("seq") != seq or body.get("kind") != kind or body.get("at") != at:
        return "the entry's columns do not match its hashed body"
    if stored_prev != prev:
        return "the entry does not link to the previous entry's hash"
    try:
        expected = chain_hash(prev, body)
    except (ValueError, TypeError):
        return "the entry's body cannot be canonicalised"
    if expected != stored_hash:
        return "the entry's hash does not match its content"
    return None


def _signature_ok(checkpoint: Checkpoint, device_public_key: bytes) -> bool:
    try:
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError:  # not even hex: altered
        return False
    return is_valid_signature(device_public_key, checkpoint.signed_bytes(), signature)
