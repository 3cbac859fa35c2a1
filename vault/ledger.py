"""The consent ledger: an append-only, hash-chained log of every consent and release event.

Each entry's body says its version. Version 2 (every new entry)::

    body_i   = {"v": 2, "seq", "kind", "at", "salt": 16 random bytes hex, ...fields}
    digest_i = SHA-256(b"consentry-ledger-entry-v2\\x00" || canonical_json(body_i))
    hash_i   = SHA-256(b"consentry-ledger-v2\\x00" || hash_{i-1} || digest_i)

Version 1 (entries written before; still verified)::

    hash_i = SHA-256(b"consentry-ledger-v1\\x00" || hash_{i-1} || canonical_json(body_i))

with ``hash_0``'s predecessor 32 zero bytes and ``seq`` inside the body, so entries cannot be reordered.
Version 2 chains over a per-entry digest so the store can check that a newer checkpoint extends the one it
witnessed from the digests alone (``extension_links``); the salt keeps a digest from confirming a guessed
body. Signed checkpoints bind a head to the device key::

    signature = Ed25519(device_key, b"consentry-checkpoint-v1\\x00" || canonical_json(checkpoint_body))
    checkpoint_body = {"v": 1, "seq", "head_hash", "device_kid", "at"}

Checkpoints travel with every batch so the store witnesses the chain. ``verify`` recomputes every
link and names the first entry that does not match. The signed head outside the database (which catches
a truncated ledger or a restored old copy) is ``vault.ledger_head``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from protocol.canonical import canonical_json
from protocol.errors import LedgerBroken
from protocol.ledger_chain import (
    ENTRY_VERSION,
    LEDGER_START_HASH,
    LEDGER_VERSION,
    chain_hash,
    checkpoint_bytes,
    entry_digest,
)
from protocol.signing import SigningKey, is_valid_signature, verify_signature
from protocol.timeutil import iso

_RESERVED = frozenset({"v", "seq", "kind", "at", "salt"})

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
        "ledger-rollback-accepted",
        "vault-repaired",
    }
)

# Entries that can only narrow what is collected or released. While the signed head says the ledger was
# rolled back, only these may be appended (withdrawing always works), and they are the only ones accepted
# past the signed head when it could not be signed (the vault key was unavailable).
NARROWING_KINDS = frozenset(
    {
        "revoke",
        "erase",
        "pause",
        "key-shredded",
        "erasure-requested",
        "batch-vetoed",
        "batch-rejected",
        "vault-repaired",  # doctor --repair: removes records that no longer authenticate, nothing else
    }
)

# Called before every append and checkpoint with the entry kind ("checkpoint" for a checkpoint); raises to
# refuse it. The vault installs one that refuses widening entries while the ledger is rolled back.
AppendGuard = Callable[[str], None]


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class LedgerEntry(NamedTuple):
    """One stored entry; ``verify`` is what establishes that it is genuine."""

    seq: int
    kind: str
    at: str
    body: dict[str, Any]  # without the salt, which only serves the hash
    prev_hash: str
    hash: str


class Checkpoint(NamedTuple):
    """A signed statement by the device that its ledger had head ``head_hash`` at ``seq``.

    Built from the vault's own rows; it crosses to the store as ``protocol.checkpoint.LedgerCheckpoint``.
    """

    seq: int
    head_hash: str
    device_kid: str
    at: str
    signature: str  # hex
    v: int = LEDGER_VERSION

    def signed_bytes(self) -> bytes:
        return checkpoint_bytes(self.seq, self.head_hash, self.device_kid, self.at)

    def verify(self, device_public_key: bytes) -> None:
        """Raise InvalidRecord unless the signature is the device's over this checkpoint."""
        verify_signature(device_public_key, self.signed_bytes(), bytes.fromhex(self.signature))


class VerifyReport(NamedTuple):
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None


class Ledger:
    """The ledger table of one vault. Appends must run inside the caller's write transaction."""

    def __init__(self, conn: sqlite3.Connection, guard: AppendGuard | None = None) -> None:
        self._conn = conn
        self._guard = guard

    def head(self) -> tuple[int, str]:
        row = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, LEDGER_START_HASH) if row is None else (int(row[0]), str(row[1]))

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of entry ``seq`` (LEDGER_START_HASH for 0), or None when there is no such entry."""
        if seq == 0:
            return LEDGER_START_HASH
        row = self._conn.execute("SELECT hash FROM ledger WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def kinds_after(self, seq: int, *, upto: int | None = None) -> list[str]:
        """The kinds of the entries after ``seq`` (up to and including ``upto``), in order."""
        last = 2**62 if upto is None else upto
        rows = self._conn.execute("SELECT kind FROM ledger WHERE seq > ? AND seq <= ? ORDER BY seq", (seq, last))
        return [str(r[0]) for r in rows]

    def append(self, kind: str, fields: dict[str, Any], now: datetime) -> LedgerEntry:
        """Append one entry. The caller holds a write transaction (BEGIN IMMEDIATE)."""
        if kind not in KINDS:
            raise ValueError(f"unknown ledger entry kind {kind!r}")
        reserved = _RESERVED & fields.keys()
        if reserved:
            raise ValueError(f"ledger fields may not use the reserved names {sorted(reserved)}")
        if self._guard is not None:
            self._guard(kind)
        seq, prev = self.head()
        at = iso(now)
        salt = secrets.token_hex(16)
        body = {"v": ENTRY_VERSION, "seq": seq + 1, "kind": kind, "at": at, "salt": salt, **fields}
        digest = chain_hash(prev, body)
        self._conn.execute(
            "INSERT INTO ledger (seq, kind, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq + 1, kind, at, canonical_json(body).decode("utf-8"), prev, digest),
        )
        return LedgerEntry(seq=seq + 1, kind=kind, at=at, body=_public(body), prev_hash=prev, hash=digest)

    def entries(self, kinds: tuple[str, ...] | None = None) -> Iterator[LedgerEntry]:
        sql = "SELECT seq, kind, at, body, prev_hash, hash FROM ledger"
        params: tuple[str, ...] = ()
        if kinds:
            sql += f" WHERE kind IN ({', '.join('?' * len(kinds))})"
            params = kinds
        for seq, kind, at, body, prev, digest in self._conn.execute(sql + " ORDER BY seq", params):
            yield LedgerEntry(seq=seq, kind=kind, at=at, body=_public(json.loads(body)), prev_hash=prev, hash=digest)

    def extension_links(self, from_seq: int, to_seq: int) -> list[dict[str, Any]]:
        """What lets the store recompute the chain from entry ``from_seq`` to ``to_seq`` without the bodies.

        A version-2 entry gives only its digest (salted, so it reveals nothing); a version-1 entry, which
        predates digests, can only be proven by its body (see docs/store.md). Raises LedgerBroken when the
        stored entries do not chain (verify says where).
        """
        links: list[dict[str, Any]] = []
        prev = self.hash_at(from_seq)
        if prev is None:
            raise LedgerBroken(f"the ledger has no entry {from_seq}")
        rows = self._conn.execute(
            "SELECT seq, body, hash FROM ledger WHERE seq > ? AND seq <= ? ORDER BY seq", (from_seq, to_seq)
        )
        for seq, body_text, stored in rows:
            body = json.loads(body_text)
            link: dict[str, Any] = {"digest": entry_digest(body)} if body.get("v") == ENTRY_VERSION else {"body": body}
            prev = chain_hash(prev, body)
            if prev != stored:
                raise LedgerBroken(f"consent ledger broken at entry {seq}; run: consentry ledger verify")
            links.append(link)
        if len(links) != to_seq - from_seq:
            raise LedgerBroken(f"the ledger does not hold entries {from_seq + 1} to {to_seq}")
        return links

    def verify(self, device_public_key: bytes | None = None) -> VerifyReport:
        """Recompute the chain (and check signed checkpoints); report the first broken entry."""
        prev = LEDGER_START_HASH
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
        if self._guard is not None:
            self._guard("checkpoint")  # never vouch for a ledger the signed head says was rolled back
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


def _public(body: dict[str, Any]) -> dict[str, Any]:
    """The body as readers see it: the salt only serves the hash."""
    return {k: v for k, v in body.items() if k != "salt"}


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
        return "the entry's body cannot be canonicalised or names an unknown version"
    if expected != stored_hash:
        return "the entry's hash does not match its content"
    return None


def _signature_ok(checkpoint: Checkpoint, device_public_key: bytes) -> bool:
    try:
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError:  # not even hex: altered
        return False
    return is_valid_signature(device_public_key, checkpoint.signed_bytes(), signature)
