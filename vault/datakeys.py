"""Data keys: one AES-256 key per (category, UTC day), wrapped by the KEK, counted, shreddable.

``DataKeys`` is the only writer of the ``data_keys`` table: records' keys, batch payload keys,
shredding and re-wrapping under a new KEK all go through it.

A key id reads ``<category>/<day>/<generation>``. Each key is used for at most ``MAX_USES`` records
(far below NIST SP 800-38D's 2**32 limit for random 96-bit nonces), then a new generation starts.
Unwrapped keys live only in this object's memory for the life of the vault handle.

Another process may shred a key, make a new one under the same id, or re-wrap every key under a new
KEK while this handle is open (the agent runs for days; ``consentry erase`` runs beside it). So a key
is remembered together with the wrapped blob it came from, and is reused only while the vault still
holds that very blob: a shredded, re-made or re-wrapped key is read again, never taken from memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from protocol.envelope import new_key, open_blob, seal, wrap_context
from protocol.errors import InvalidRecord

MAX_USES = 1 << 24


def make_key_id(category: str, day: str, generation: int) -> str:
    return f"{category}/{day}/{generation}"


class DataKeys:
    def __init__(self, conn: sqlite3.Connection, kek: Callable[[], bytes], now_iso: Callable[[], str]) -> None:
        self._conn = conn
        self._kek = kek
        self._now_iso = now_iso
        self._plain: dict[str, tuple[bytes, bytes]] = {}  # key id -> (wrapped blob, plaintext key)

    def _wrapped(self, key_id: str) -> bytes:
        row = self._conn.execute("SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise KeyError(key_id)
        return bytes(row[0])

    def unwrap(self, key_id: str) -> bytes:
        """The plaintext data key; ``KeyError`` when it was shredded (its data is gone)."""
        wrapped = self._wrapped(key_id)
        cached = self._plain.get(key_id)
        if cached is not None and cached[0] == wrapped:
            return cached[1]
        try:
            key = open_blob(self._kek(), wrapped, wrap_context(key_id))
        except InvalidRecord:
            # Outside a write transaction another process may have re-wrapped the keys between our reads
            # of the KEK check and of this row: read both once more (a real mismatch fails again).
            wrapped = self._wrapped(key_id)
            key = open_blob(self._kek(), wrapped, wrap_context(key_id))
        self._plain[key_id] = (wrapped, key)
        return key

    def check_stored(self, key_id: str, key: bytes) -> None:
        """``InvalidRecord`` unless the vault's own row for ``key_id`` unwraps, under the vault's current
        KEK, to ``key``: proof that any reader can open what was just written with it."""
        if open_blob(self._kek(), self._wrapped(key_id), wrap_context(key_id)) != key:
            raise InvalidRecord()

    def for_write(self, category: str, day: str, count: int) -> tuple[str, bytes]:
        """A key with room for ``count`` more records (caller holds the write transaction)."""
        row = self._conn.execute(
            "SELECT key_id, uses FROM data_keys WHERE category = ? AND day = ? ORDER BY rowid DESC LIMIT 1",
            (category, day),
        ).fetchone()
        if row is not None and row[1] + count <= MAX_USES:
            key_id = str(row[0])
            key = self.unwrap(key_id)
        else:
            generation = 0 if row is None else int(str(row[0]).rsplit("/", 1)[1]) + 1
            key_id = make_key_id(category, day, generation)
            key = self.add(key_id, category, day)
        self._conn.execute("UPDATE data_keys SET uses = uses + ? WHERE key_id = ?", (count, key_id))
        return key_id, key

    def add(self, key_id: str, category: str, day: str, *, uses: int = 0, created: str | None = None) -> bytes:
        """A new random key stored (wrapped) under ``key_id``; the caller holds the write transaction."""
        key = new_key()
        wrapped = seal(self._kek(), key, wrap_context(key_id))
        self._conn.execute(
            "INSERT INTO data_keys (key_id, category, day, wrapped, uses, created) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, category, day, wrapped, uses, created or self._now_iso()),
        )
        self._plain[key_id] = (wrapped, key)
        return key

    def destroy(self, key_ids: Iterable[str]) -> None:
        """Shred: delete the wrapped keys (caller holds the write transaction) and drop them from memory."""
        ids = list(key_ids)
        self._conn.executemany("DELETE FROM data_keys WHERE key_id = ?", [(key_id,) for key_id in ids])
        self.forget(ids)

    def rewrap(self, old_kek: bytes, new_kek: bytes) -> None:
        """Wrap every data key under ``new_kek`` instead of ``old_kek`` (caller holds the write transaction)."""
        for key_id, wrapped in self._conn.execute("SELECT key_id, wrapped FROM data_keys").fetchall():
            plain = open_blob(old_kek, wrapped, wrap_context(key_id))
            rewrapped = seal(new_kek, plain, wrap_context(key_id))
            self._conn.execute("UPDATE data_keys SET wrapped = ? WHERE key_id = ?", (rewrapped, key_id))
            self._plain[key_id] = (rewrapped, plain)

    def forget(self, key_ids: Iterable[str]) -> None:
        """Drop shredded keys from memory too (after a rollback they are simply unwrapped again)."""
        for key_id in key_ids:
            self._plain.pop(key_id, None)
