"""The store's records KEK: the key in use, its file, and its replacement after every erasure.

Why replace it: an erasure deletes the subject's wrapped key row, but PostgreSQL keeps the deleted row
in its heap files until VACUUM and in ``pg_wal`` until the segment is recycled (WAL archives and base
backups keep it for good), and SQLite backups keep it too. With the KEK that wrapped it, such a copy
opens, and the erased records decrypt. So after an erasure the store makes a new KEK and re-wraps every
remaining subject key under it: every copy of an erased key, wherever it lies, is wrapped under a KEK
that no longer exists anywhere the store keeps keys.

Rotation is three steps; a crash between any two leaves a store that still opens every key:

1. stage: the new KEK goes to ``store-records-kek.key.next`` (0600, fsync'd);
2. re-wrap: one transaction re-wraps every subject key under it and records its id in ``records_kek``;
3. promote: the staged file replaces ``store-records-kek.key`` (an atomic rename).

Whoever finds a staged file (the next rotation, or a store starting) promotes it if the database names
it and deletes it otherwise. The database row names the KEK the keys are wrapped under by a digest
that reveals nothing of the key, so a store process holding an older KEK (another process rotated)
re-reads the key folder instead of wrapping a new subject key under a KEK about to disappear.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from protocol import domains
from protocol.envelope import new_key
from protocol.errors import KeyUnavailable
from protocol.keyfile import read_key_file, write_key_file

RECORDS_KEK_FILE = "store-records-kek.key"
STAGED_SUFFIX = ".next"
# The ids (never the keys) of every KEK a rotation replaced: with them a database put back from a backup
# older than the last erasure is told apart from a store started with the wrong key folder.
RETIRED_IDS_FILE = "store-records-kek.retired"


class DatabaseOlderThanKeys(KeyUnavailable):
    """The database names a records KEK that an erasure replaced: it was put back from an older backup."""

    def __init__(self) -> None:
        super().__init__(
            "this database is older than the last erasure: it was put back from a backup taken before it. "
            "Its subject keys are wrapped under a records KEK that the erasure replaced on purpose, so that "
            "no copy of an erased person's key opens again; none of its records can be read, and the release "
            "table kept in it may hold rows of people who have erased since. Put back the newest database "
            "backup instead, with the release warehouse of the same time (a database backup taken after the "
            "last erasure opens with this key folder). Do not put back an older key folder: it would undo "
            "every erasure made since that backup."
        )


def retired_kek_ids(key_dir: Path) -> set[str]:
    """The ids of every records KEK a rotation replaced in ``key_dir`` (none before the first erasure)."""
    try:
        return set((key_dir / RETIRED_IDS_FILE).read_text(encoding="ascii").split())
    except FileNotFoundError:
        return set()


def kek_id(key: bytes) -> str:
    """A name for a KEK that says nothing about it (SHA-256 of a 256-bit random key, domain-separated)."""
    return hashlib.sha256(domains.RECORDS_KEK_ID_V1 + key).hexdigest()[:32]


class RecordsKek:
    """The records KEK in use; kept in ``path`` (a key file) or, for tests and demos, in memory only."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        self._key = key
        self._staged: bytes | None = None
        self.path = path
        self.lock = threading.Lock()  # one rotation at a time in this process

    def __repr__(self) -> str:
        return f"RecordsKek(id={self.kek_id}, path={self.path})"  # never the key

    @classmethod
    def load_or_create(cls, path: Path) -> RecordsKek:
        if not path.exists():
            try:
                write_key_file(path, "aes256", new_key())
            except FileExistsError:
                pass  # another store process created it first; use theirs
        return cls(read_key_file(path, "aes256"), path)

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def kek_id(self) -> str:
        return kek_id(self._key)

    @property
    def staged_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + STAGED_SUFFIX)

    def for_id(self, wanted: str) -> bytes:
        """The KEK named ``wanted``: ours, the one we staged, or one another store process put in the folder."""
        for candidate in (self._key, self._staged):
            if candidate is not None and kek_id(candidate) == wanted:
                return candidate
        for path in (self.path, self.staged_path):
            if path is not None and path.exists():
                try:
                    candidate = read_key_file(path, "aes256")
                except FileNotFoundError:
                    continue  # promoted meanwhile: the other path has it
                if kek_id(candidate) == wanted:
                    if path == self.path:
                        self._key = candidate  # another process rotated: follow it
                    return candidate
        if self.path is not None and wanted in retired_kek_ids(self.path.parent):
            raise DatabaseOlderThanKeys()
        raise KeyUnavailable(
            f"the records KEK ({RECORDS_KEK_FILE}) is not the one this database's subject keys are wrapped "
            "under: this store runs with another key folder than the one its records were stored with; "
            "restore that folder"
        )

    def settle(self, recorded: str) -> None:
        """Finish or undo a rotation a crash interrupted: the database's id (``recorded``) decides."""
        staged = self.staged_path
        if staged is None or not staged.exists():
            self.for_id(recorded)  # no rotation under way; KeyUnavailable if the folder is not this database's
            return
        candidate = read_key_file(staged, "aes256")
        if kek_id(candidate) == recorded:
            self._staged = candidate
            self.promote()  # the re-wrap committed; the rename did not happen
        else:
            staged.unlink()  # the re-wrap never committed: nothing is wrapped under it
            self.for_id(recorded)

    def stage(self) -> bytes:
        """Step 1: a new KEK, durable in the folder before any key is wrapped under it."""
        fresh = new_key()
        staged = self.staged_path
        if staged is not None:
            staged.unlink(missing_ok=True)  # settle() ran under the same lock: a leftover is not the database's
            write_key_file(staged, "aes256", fresh)
        self._staged = fresh
        return fresh

    def promote(self) -> None:
        """Step 3: the staged KEK becomes the KEK; the old key file is replaced (renamed over)."""
        fresh = self._staged
        if fresh is None:
            return
        staged = self.staged_path
        if self.path is not None and staged is not None:
            self._retire(kek_id(self._key))  # before the rename: a crash between leaves a harmless extra id
            try:
                os.replace(staged, self.path)
            except FileNotFoundError:
                # Another store process promoted it first (it settled our rotation): nothing left to do.
                if read_key_file(self.path, "aes256") != fresh:
                    raise
            _fsync_folder(self.path.parent)
        self._key, self._staged = fresh, None

    @property
    def retired_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(RETIRED_IDS_FILE)

    def _retire(self, old_id: str) -> None:
        """Add ``old_id`` to the retired ids: one line appended (atomic for a line this short) and fsync'd."""
        path = self.retired_path
        if path is None or old_id in retired_kek_ids(path.parent):
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (old_id + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        """Undo step 1 (the re-wrap failed): the staged KEK never wrapped anything."""
        staged = self.staged_path
        if staged is not None:
            staged.unlink(missing_ok=True)
        self._staged = None


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the new KEK must not revert to the old after a power cut)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
