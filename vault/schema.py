"""The vault database: opening it safely, and named migrations recorded in ``_migrations``.

Each migration runs in its own transaction and is recorded by name. A database that records a
migration this code does not know, or a ``format_version`` above ``FORMAT_VERSION``, was written by a
newer Consentry and is refused rather than guessed at. Statements run one by one with ``execute``:
``executescript`` and sqlite-utils' index helpers both COMMIT the caller's transaction, which would
break the one-transaction-per-migration rule.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from protocol.errors import UnsupportedVersion, VaultCorrupted
from protocol.permissions import check_private

FORMAT_VERSION = 1
BUSY_TIMEOUT_MS = 10_000


# Records read by every CLI command are NamedTuples: immutable like a frozen dataclass, and about a
# fifth of its cost to define when the command starts (docs/architecture.md, "Start-up").
class Migration(NamedTuple):
    """A named schema change: statements run one by one inside one transaction."""

    name: str
    statements: tuple[str, ...]


_M0001_INITIAL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, blob BLOB NOT NULL)",
    """CREATE TABLE data_keys (
        key_id TEXT PRIMARY KEY, category TEXT NOT NULL, day TEXT NOT NULL,
        wrapped BLOB NOT NULL, uses INTEGER NOT NULL, created TEXT NOT NULL)""",
    "CREATE INDEX data_keys_category_day ON data_keys (category, day)",
    """CREATE TABLE records (
        record_id INTEGER PRIMARY KEY, category TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
        key_id TEXT NOT NULL, receipt_id TEXT NOT NULL, blob BLOB NOT NULL, batch_id TEXT)""",
    "CREATE INDEX records_category_start ON records (category, start)",
    "CREATE INDEX records_key_id ON records (key_id)",
    """CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    """CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY, head_hash TEXT NOT NULL, at TEXT NOT NULL,
        device_kid TEXT NOT NULL, signature TEXT NOT NULL)""",
    # Append-only: the chain makes edits detectable; these triggers make them a loud error too.
    """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END""",
    """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END""",
)


_M0002_BATCHES = (
    # A batch: records sealed for release. Its payload is encrypted under its own data key
    # (data_keys.category = 'batch'), so vetoing or shipping it is a shred of that one key.
    """CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY, state TEXT NOT NULL, created TEXT NOT NULL, hold_until TEXT NOT NULL,
        period_start INTEGER NOT NULL, period_end INTEGER NOT NULL, record_counts TEXT NOT NULL,
        key_id TEXT, payload BLOB, payload_sha256 TEXT NOT NULL, privacy_checks TEXT NOT NULL,
        seq INTEGER UNIQUE, manifest TEXT, manifest_sha256 TEXT, receipt TEXT,
        last_error TEXT, updated TEXT NOT NULL)""",
    "CREATE INDEX batches_state ON batches (state)",
    # Erasure requests for the store, kept until the store has acknowledged them.
    """CREATE TABLE erasure_requests (
        request_id TEXT PRIMARY KEY, created TEXT NOT NULL, scope TEXT NOT NULL, request TEXT NOT NULL,
        receipt TEXT, last_error TEXT)""",
)


_M0003_BATCH_UPLOADS = (
    # The sealed upload, kept from its first attempt so every retry sends identical bytes (the store
    # answers an identical retry with the receipt it already gave).
    "ALTER TABLE batches ADD COLUMN upload TEXT",
)


_M0004_SUBJECT_PERIODS = (
    # One random subject pseudonym per policy period (vault/subjects.py); only the vault can link them.
    """CREATE TABLE subjects (
        subject TEXT PRIMARY KEY, period_start INTEGER NOT NULL, period_end INTEGER NOT NULL,
        retired INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL)""",
    "CREATE INDEX subjects_period ON subjects (period_start)",
    # The subject a batch was sealed under (NULL: sealed before rotation, under meta.subject).
    "ALTER TABLE batches ADD COLUMN subject TEXT",
)

# How many records each category holds, kept by triggers on every insert and delete (erasure, veto,
# repair alike), so "N of M stored" costs a lookup rather than counting a million rows (issue 17).
_M0005_RECORD_COUNTS = (
    "CREATE TABLE record_counts (category TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "INSERT INTO record_counts (category, n) SELECT category, COUNT(*) FROM records GROUP BY category",
    """CREATE TRIGGER records_counted_on_insert AFTER INSERT ON records BEGIN
        INSERT INTO record_counts (category, n) VALUES (NEW.category, 1)
        ON CONFLICT (category) DO UPDATE SET n = n + 1; END""",
    """CREATE TRIGGER records_counted_on_delete AFTER DELETE ON records BEGIN
        UPDATE record_counts SET n = n - 1 WHERE category = OLD.category; END""",
    """CREATE TRIGGER records_counted_on_update AFTER UPDATE OF category ON records BEGIN
        UPDATE record_counts SET n = n - 1 WHERE category = OLD.category;
        INSERT INTO record_counts (category, n) VALUES (NEW.category, 1)
        ON CONFLICT (category) DO UPDATE SET n = n + 1; END""",
)


MIGRATIONS: list[Migration] = [
    Migration("0001_initial", _M0001_INITIAL),
    Migration("0002_batches", _M0002_BATCHES),
    Migration("0003_batch_uploads", _M0003_BATCH_UPLOADS),
    Migration("0004_subject_periods", _M0004_SUBJECT_PERIODS),
    Migration("0005_record_counts", _M0005_RECORD_COUNTS),
]


def connect(path: Path) -> sqlite3.Connection:
    """Open the vault database with the pragmas Consentry relies on. Explicit transactions only."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _switch_to_wal(conn)
        if mode.lower() != "wal":
            raise VaultCorrupted(f"{path}: cannot switch the vault to WAL mode (got {mode})")
        # FULL: a committed record survives power loss, not only a crash of the process.
        conn.execute("PRAGMA synchronous = FULL")
        # Deleted content (shredded wrapped keys) is overwritten with zeros, not left in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise VaultCorrupted(f"{path} is not a readable Consentry vault ({exc})") from None
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode = WAL``, retried while another process holds the new file's lock.

    Two processes switching a brand-new file at once upgrade shared locks to exclusive; SQLite then
    answers "locked" at once instead of calling the busy handler (to avoid a deadlock), so wait here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def create_file(path: Path) -> None:
    """Create an empty, owner-only database file inside an owner-only folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def check_file_permissions(path: Path) -> None:
    check_private(path.parent, is_dir=True)
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        check_private(candidate, is_dir=False)


def peek_meta(path: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """``keys`` from the meta table of a vault file that may not open as a vault (read-only, no migration).

    For destroying a damaged vault's keys: whatever cannot be read is simply absent.
    """
    marks = ", ".join("?" * len(keys))
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})", keys).fetchall()
    except sqlite3.Error:
        return {}
    return {str(key): str(value) for key, value in rows}


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    try:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").fetchone()
        if not exists:
            return []
        return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    except sqlite3.DatabaseError as exc:
        raise VaultCorrupted(f"the vault database is damaged ({exc})") from None


def migrate(conn: sqlite3.Connection, now_iso: str) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return the names applied."""
    done = applied_migrations(conn)
    known = [m.name for m in MIGRATIONS]
    unknown = [name for name in done if name not in known]
    if unknown:
        raise UnsupportedVersion(
            f"this vault was upgraded by a newer Consentry (migration {unknown[0]!r}); install that version"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            # Another process may have applied it while we waited for the write lock.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (migration.name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (migration.name, now_iso))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied


def check_format_version(stored: str | None) -> None:
    if stored is None:
        return
    try:
        version = int(stored)
    except ValueError:
        raise VaultCorrupted(f"the vault's format_version {stored!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise UnsupportedVersion(
            f"this vault was written by a newer Consentry (format {version}; this one reads up to "
            f"{FORMAT_VERSION}); upgrade Consentry"
        )
