"""The employee's vault: one SQLite file holding encrypted window records, keys and the ledger.

Opening a vault never needs its key; reading or writing captured data does. Every write happens in
one ``BEGIN IMMEDIATE`` transaction, so a crash leaves either all of a flush or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.categories import Category
from protocol.envelope import (
    Envelope,
    kek_check_context,
    new_key,
    open_blob,
    record_context,
    record_contexts,
    seal,
    secret_context,
)
from protocol.errors import (
    ConsentError,
    ConsentryError,
    InvalidRecord,
    KeyUnavailable,
    LedgerRolledBack,
    RecordInFuture,
    VaultCorrupted,
    VaultError,
)
from protocol.signing import SigningKey
from protocol.timeutil import DAY_SECONDS, day_start, iso, parse_iso, utc_day, utc_now
from vault.consent import ConsentSnapshot, ReceiptSpan, derive_snapshot, receipt_spans, withheld
from vault.datakeys import DataKeys
from vault.keys import KekStore, choose_kek_store
from vault.ledger import NARROWING_KINDS, Ledger, LedgerEntry
from vault.ledger_head import (
    HeadState,
    Pending,
    check_head,
    head_path,
    pending_path,
    read_head,
    read_pending,
    sign_head,
    write_head,
    write_pending,
)
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.schema import (
    FORMAT_VERSION,
    check_file_permissions,
    check_format_version,
    connect,
    create_file,
    migrate,
)

if TYPE_CHECKING:
    from protocol.windows import AnyWindow

RECORDS_TABLE = "records"
_ALL_CATEGORIES = [c.value for c in Category]
_KEK_CHECK_PLAINTEXT = b"consentry-kek-check-v1"
DEVICE_KEY_SECRET = "device-key"
# A window is written when it closes, so it never ends after "now"; 5 minutes absorb an NTP step or a
# clock corrected between capture and flush. Anything later is a wrong clock or a forged record.
FUTURE_TOLERANCE_SECONDS = 300

VaultClock = Callable[[], datetime]


class Vault:
    """An open vault. Use ``Vault.open(layout)``; close it (or use ``with``) when done."""

    def __init__(self, layout: Layout, conn: sqlite3.Connection, meta: dict[str, str], clock: VaultClock) -> None:
        self.layout = layout
        self.db = conn
        self.meta = meta
        self.clock = clock
        self.ledger = Ledger(conn, guard=self._guard_append)
        self._head_path = head_path(layout.key_dir)
        self._pending_path = pending_path(layout.home)
        # The last withdrawal seen past a lagging head: a long-running process (the agent) keeps it, so
        # deleting it from the database and its note from the disk is still caught while it runs.
        self._pending_seen: Pending | None = None
        self._reanchor = False  # set only by accept_rollback: sign the head whatever the old one said
        self._kek_store: KekStore = choose_kek_store(
            meta.get("kek_store"), key_file=layout.kek_file, account=f"vault:{meta.get('vault_id', '')}"
        )
        self._kek: bytes | None = None
        self._kek_checked = ""  # the kek_check value self._kek was found to fit
        self._device_key: SigningKey | None = None
        self.data_keys = DataKeys(conn, self.kek, lambda: iso(self.clock()))

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def exists(cls, layout: Layout) -> bool:
        return layout.vault_db.exists()

    @classmethod
    def open(cls, layout: Layout, *, create: bool = True, clock: VaultClock = utc_now) -> Vault:
        path = layout.vault_db
        if not path.exists():
            if not create:
                raise VaultError(f"no vault at {path} yet; it is created by your first: consentry consent grant")
            try:
                create_file(path)
            except FileExistsError:
                pass  # another process created it a moment ago; _initialise lets only one of us set it up
        check_file_permissions(path)
        conn = connect(path)
        try:
            migrate(conn, iso(clock()))
            meta = _read_meta(conn)
            check_format_version(meta.get("format_version"))
            vault = cls(layout, conn, meta, clock)
            if "vault_id" not in meta:
                vault._initialise()
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise VaultError("the vault is busy (locked by another process); retry in a moment") from None
            raise VaultCorrupted(f"{path} is damaged and cannot be read as a Consentry vault ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return vault

    def _initialise(self) -> None:
        """First open: make the KEK, the device key and the vault's identity, in one transaction."""
        with self.transaction():
            # Several processes may open a new file at once (the agent starting, `consentry status`, the
            # tray): the write lock orders them, and only the first makes the keys and the identity.
            if self.db.execute("SELECT 1 FROM meta WHERE key = 'vault_id'").fetchone():
                self.meta = _read_meta(self.db)
                self._kek_store = choose_kek_store(
                    self.meta.get("kek_store"), key_file=self.layout.kek_file, account=f"vault:{self.meta['vault_id']}"
                )
                return
            vault_id = uuid.uuid4().hex
            store = choose_kek_store(None, key_file=self.layout.kek_file, account=f"vault:{vault_id}")
            try:
                kek = store.load()  # a previous initialisation may have died after making the key
            except KeyUnavailable:
                kek = store.create()
            device = SigningKey.generate()
            now = self.clock()
            # Known before the first append, so the transaction can sign the ledger head.
            self._kek_store, self._device_key = store, device
            values = {
                "vault_id": vault_id,
                "format_version": str(FORMAT_VERSION),
                "created": iso(now),
                "kek_store": store.kind,
                "subject": "subj-" + uuid.uuid4().hex,
                "kek_check": seal(kek, _KEK_CHECK_PLAINTEXT, kek_check_context(vault_id)).hex(),
            }
            self.db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            self.meta = values
            self._kek, self._kek_checked = kek, values["kek_check"]
            self.db.execute(
                "INSERT INTO secrets (name, blob) VALUES (?, ?)",
                (DEVICE_KEY_SECRET, seal(kek, device.private_bytes(), secret_context(DEVICE_KEY_SECRET))),
            )
            self.ledger.append(
                "vault-created",
                # ledger_head: this vault keeps a signed head from its first entry, so one missing is tampering.
                {"vault_id": vault_id, "device_kid": device.kid, "format_version": FORMAT_VERSION, "ledger_head": 1},
                now,
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and keys ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any error. Ledger appends also move the signed head."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            before = self.ledger.head()
            yield self.db
            after = self.ledger.head()
            published = self._publish_head(before, after) if after != before else None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        if published == "signed":
            self._settle_head(after)
        elif published == "lagging":
            self._note_pending(Pending(*after))

    # -- the signed ledger head (vault/ledger_head.py) -----------------------------------------------

    def ledger_head_state(self, db_head: tuple[int, str] | None = None) -> HeadState:
        """How the ledger stands against its signed head outside the database."""
        try:
            public_key: bytes | None = self.device_key.public_bytes
        except ConsentryError:  # no vault key: the signature cannot be checked, and nothing can be captured
            public_key = None
        pending = read_pending(self._pending_path, self.vault_id)
        seen = self._pending_seen
        if seen is not None and (pending is None or (isinstance(pending, Pending) and pending.seq < seen.seq)):
            pending = seen
        state = check_head(
            self.ledger,
            read_head(self._head_path),
            vault_id=self.vault_id,
            required=self._head_required(),
            public_key=public_key,
            db_head=db_head,
            pending=pending,
        )
        if state.lagging and db_head is None:
            last = self.ledger.head()
            if self._pending_seen is None or self._pending_seen.seq < last[0]:
                self._pending_seen = Pending(*last)
        return state

    def catch_up_head(self) -> bool:
        """Sign the head over the ledger as it is when it lags only withdrawals; True when it now covers them."""
        with self.transaction():
            state = self.ledger_head_state()
            if not state.lagging:
                return state.ok
            after = self.ledger.head()
            try:
                write_head(self._head_path, sign_head(self.device_key, self.vault_id, after, None, iso(self.clock())))
            except (ConsentryError, OSError):
                return False
        self._clear_pending(after[0])
        return True

    def _note_pending(self, entry: Pending) -> None:
        """After COMMIT of withdrawals the head could not cover: note the entry they end at."""
        if self._pending_seen is None or self._pending_seen.seq < entry.seq:
            self._pending_seen = entry
        try:
            write_pending(self._pending_path, self.vault_id, entry, iso(self.clock()))
        except OSError:
            pass  # the lag still shows (entries past the head); only a later deletion could then pass

    def _clear_pending(self, head_seq: int) -> None:
        """The signed head now reaches ``head_seq``: a note of an entry it covers is no longer needed."""
        pending = read_pending(self._pending_path, self.vault_id)
        if pending is None or (isinstance(pending, Pending) and pending.seq > head_seq):
            return
        try:
            self._pending_path.unlink(missing_ok=True)
        except OSError:
            pass  # it names an entry the ledger holds: harmless
        if self._pending_seen is not None and self._pending_seen.seq <= head_seq:
            self._pending_seen = None

    @property
    def head_file(self) -> Path:
        return self._head_path

    def _head_required(self) -> bool:
        if self.meta.get("ledger_head") == "1":
            return True
        created = next(self.ledger.entries(("vault-created",)), None)
        return created is not None and created.body.get("ledger_head") == 1

    def _guard_append(self, kind: str) -> None:
        """Refuse widening entries (and checkpoints) while the ledger does not match its signed head."""
        if kind in NARROWING_KINDS or kind == "vault-created" or self._reanchor:
            return
        state = self.ledger_head_state()
        if not state.ok:
            raise LedgerRolledBack(state.explain())

    def _publish_head(self, before: tuple[int, str], after: tuple[int, str]) -> str:
        """Inside the transaction, before COMMIT: sign the new head (``before`` stays acceptable).

        Returns "signed", "lagging" (withdrawals only, and the head could not be written: they are
        committed all the same) or "kept" (the ledger does not match its head: its evidence is kept).
        """
        new_kinds = self.ledger.kinds_after(before[0], upto=after[0])
        narrowing = all(k in NARROWING_KINDS for k in new_kinds)
        if not self._reanchor and before[0] > 0 and not self.ledger_head_state(db_head=before).ok:
            return "kept"  # keep the evidence: only narrowing entries got past the guard
        try:
            key = self.device_key
            write_head(self._head_path, sign_head(key, self.vault_id, after, before, iso(self.clock())))
        except (ConsentryError, OSError) as exc:
            if narrowing:  # a withdrawal is recorded even when the head cannot be signed or written
                return "lagging"
            raise VaultError(
                f"the consent ledger's signed head could not be written ({type(exc).__name__}); nothing was "
                "changed. Run: consentry doctor"
            ) from None
        if self.meta.get("ledger_head") != "1":
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('ledger_head', '1')")
            self.meta = {**self.meta, "ledger_head": "1"}
        return "signed"

    def _settle_head(self, after: tuple[int, str]) -> None:
        """After COMMIT: drop ``prev`` from the head, so deleting the new entries is caught from now on.

        Under a fresh write lock, and only if nobody appended since; if the lock is busy the next append
        settles it instead.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return
        settled = False
        try:
            if self.ledger.head() == after:
                write_head(self._head_path, sign_head(self.device_key, self.vault_id, after, None, iso(self.clock())))
                settled = True
        except (ConsentryError, OSError):
            pass  # the head still names this state (with prev); the next append settles it
        finally:
            self.db.execute("ROLLBACK")
        if settled:
            self._clear_pending(after[0])

    @contextmanager
    def reanchoring(self) -> Iterator[None]:
        """For accepting a rollback only: the next transaction signs the head over the ledger as it is."""
        self._reanchor = True
        try:
            yield
        finally:
            self._reanchor = False

    @property
    def vault_id(self) -> str:
        return self.meta["vault_id"]

    @property
    def subject(self) -> str:
        return self.meta["subject"]

    def kek(self) -> bytes:
        """The key-encryption key the vault uses now, checked against it (wrong key -> KeyUnavailable).

        Another process may replace the KEK (``consentry erase --all``) while this handle stays open (the
        agent's does for days). So every use compares the vault's current ``kek_check`` with the one the
        remembered key was checked against, and loads the key again when they differ. Inside a write
        transaction that comparison holds until COMMIT (nobody else can write), so nothing this handle
        writes is ever wrapped under a KEK the vault no longer has.
        """
        check = self._current_kek_check()
        if self._kek is None or check != self._kek_checked:
            self.meta["kek_check"] = check
            self._kek = None
            self._kek = self._load_kek()
            self._kek_checked = check
        return self._kek

    def _current_kek_check(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'kek_check'").fetchone()
        return str(row[0]) if row is not None else self.meta["kek_check"]

    def _load_kek(self) -> bytes:
        """The stored KEK that fits ``meta['kek_check']``: the current one, or a staged replacement."""
        problem: KeyUnavailable | None = None
        for attempt in range(3):
            if attempt:
                time.sleep(0.05)  # another process may be between the two steps of its swap: look again
            try:
                kek: bytes | None = self._kek_store.load()
            except KeyUnavailable as exc:
                kek, problem = None, exc
            if kek is not None and self._kek_fits(kek):
                return kek
            # A replacement (replace_kek) committed; its swap is still to come, or crashed: finish it.
            staged = self._kek_store.staged()
            if staged is not None and self._kek_fits(staged):
                self._kek_store.promote(staged)
                return staged
        if problem is not None:
            raise problem
        raise KeyUnavailable(
            "the vault key does not belong to this vault (was the key file replaced?); "
            "restore the original key, or erase the vault with: consentry erase --all --force"
        )

    def _kek_fits(self, kek: bytes) -> bool:
        try:
            open_blob(kek, bytes.fromhex(self.meta["kek_check"]), kek_check_context(self.vault_id))
        except InvalidRecord:
            return False
        return True

    def replace_kek(self, *, promote: bool = True) -> bytes:
        """Re-wrap every key under a new KEK and destroy the old one (``consentry erase --all``).

        A copy of the vault file taken before cannot be opened with any key that exists afterwards.
        Under the write lock the new KEK is stored beside the old one, then the secrets and data keys are
        re-wrapped and the check value changed in the same transaction; after COMMIT the new KEK becomes
        the only one (``promote=False``: tests of a crash there). Other open handles see the new check
        value at their next use of the KEK and load the new key (``kek``).
        """
        new = new_key()
        with self.transaction():
            old = self.kek()  # the vault's KEK as of this lock (finishing an earlier swap if one was cut short)
            self._kek_store.stage(new)
            for name, blob in self.db.execute("SELECT name, blob FROM secrets").fetchall():
                plain = open_blob(old, blob, secret_context(name))
                self.db.execute(
                    "UPDATE secrets SET blob = ? WHERE name = ?", (seal(new, plain, secret_context(name)), name)
                )
            self.data_keys.rewrap(old, new)
            check = seal(new, _KEK_CHECK_PLAINTEXT, kek_check_context(self.vault_id)).hex()
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'kek_check'", (check,))
        self.meta["kek_check"] = check
        self._kek, self._kek_checked = new, check
        if promote:
            self._kek_store.promote(new)
        return new

    @property
    def device_key(self) -> SigningKey:
        if self._device_key is None:
            self._device_key = SigningKey(self.local_secret(DEVICE_KEY_SECRET, create=False))
        return self._device_key

    def local_secret(self, name: str, *, create: bool = True) -> bytes:
        """A 32-byte secret kept KEK-wrapped in the vault, made on first use."""
        row = self.db.execute("SELECT blob FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return open_blob(self.kek(), row[0], secret_context(name))
        if not create:
            raise VaultCorrupted(f"the vault has lost its {name!r} secret")
        secret = new_key()
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO secrets (name, blob) VALUES (?, ?)",
                (name, seal(self.kek(), secret, secret_context(name))),
            )
        return self.local_secret(name, create=False)

    # -- consent ---------------------------------------------------------------------------------

    def ledger_head(self) -> tuple[int, str]:
        return self.ledger.head()

    def consent(self, policy: MachinePolicy) -> ConsentSnapshot:
        """The consent state; none of it is capturable while the ledger does not match its signed head."""
        snapshot = derive_snapshot(self.ledger.entries(), policy)
        state = self.ledger_head_state()
        return snapshot if state.ok else withheld(snapshot, state.explain())

    def receipt_spans(self) -> dict[str, ReceiptSpan]:
        return receipt_spans(self.ledger.entries(("grant", "revoke", "erase")))

    # -- records -----------------------------------------------------------------------------------

    def write_windows(self, records: Sequence[AnyWindow]) -> int:
        """Encrypt and store ``records`` in one transaction; refuse all if any is not covered by consent.

        Everything is decided under the write lock, so no other process can change it before COMMIT:
        consent and erasures are read there (an erasure that committed a moment ago is seen), the KEK
        and each data key are re-read when another process replaced or shredded them (``kek``,
        ``DataKeys``), and before COMMIT each data key used is read back from its row under the vault's
        current KEK and the first record sealed with it is opened from its row. A write that any reader
        could not read back is rolled back (``InvalidRecord``), never committed.
        """
        if not records:
            return 0
        _refuse_future(records, self.clock())
        rows: list[tuple[int, str, int, int, str, str, bytes]] = []
        with self.transaction():
            coverage = _Coverage(self.receipt_spans(), list(self.ledger.entries(("erase",))))
            by_key: dict[tuple[str, int], list[AnyWindow]] = {}
            for record in records:
                coverage.check(record)
                by_key.setdefault((record.category, record.start // DAY_SECONDS), []).append(record)
            read_back: list[tuple[int, str, str, bytes]] = []  # (first record id, category, key id, key)
            next_id = self._next_record_id()
            for (category, day_number), group in by_key.items():
                day = utc_day(datetime.fromtimestamp(day_number * DAY_SECONDS, UTC))
                key_id, key = self.data_keys.for_write(category, day, len(group))
                aad = record_contexts(RECORDS_TABLE, key_id, category)
                ids = range(next_id, next_id + len(group))
                blobs = Envelope(key).seal_many(
                    [(r.__pydantic_serializer__.to_json(r), aad(i)) for i, r in zip(ids, group, strict=True)]
                )
                rows.extend(
                    (i, category, r.start, r.end, key_id, r.receipt_id, blob)
                    for i, r, blob in zip(ids, group, blobs, strict=True)
                )
                read_back.append((next_id, category, key_id, key))
                next_id += len(group)
            self.db.executemany(
                "INSERT INTO records (record_id, category, start, end, key_id, receipt_id, blob) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._read_back(read_back)
        return len(rows)

    def _read_back(self, written: list[tuple[int, str, str, bytes]]) -> None:
        """Inside the write transaction: what was just written opens the way any reader opens it."""
        for record_id, category, key_id, key in written:
            self.data_keys.check_stored(key_id, key)
            (blob,) = self.db.execute("SELECT blob FROM records WHERE record_id = ?", (record_id,)).fetchone()
            Envelope(key).open(blob, record_context(RECORDS_TABLE, record_id, key_id, category))

    def _next_record_id(self) -> int:
        row = self.db.execute("SELECT MAX(record_id) FROM records").fetchone()
        return 1 if row[0] is None else int(row[0]) + 1

    def read_windows(
        self,
        category: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        record_ids: Sequence[int] | None = None,
    ) -> list[AnyWindow]:
        """Decrypt and validate stored records; any tampering raises the opaque InvalidRecord."""
        return [
            record for _, record in self.read_windows_with_ids(category, start=start, end=end, record_ids=record_ids)
        ]

    def read_windows_with_ids(
        self,
        category: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        record_ids: Sequence[int] | None = None,
    ) -> list[tuple[int, AnyWindow]]:
        from protocol.windows import parse_window  # only commands that use records as models pay for the schema

        out: list[tuple[int, AnyWindow]] = []
        for record_id, cat, plaintext in self._decrypt_records(category, start, end, record_ids):
            record = parse_window(plaintext)
            if record.category != cat:
                raise InvalidRecord()
            out.append((record_id, record))
        return out

    def iter_records_as_stored(
        self,
        category: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        newest: int | None = None,
        skip_newest: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """The stored records as the JSON they were written as, in time order, one at a time (``mydata``).

        ``start``/``end`` bound the window starts (``start <= s < end``). ``newest=N`` yields only the
        N most recent of those, after leaving out the ``skip_newest`` most recent (a page counted from
        the newest), still in time order. Rows are read from a cursor, so memory stays constant however
        large the vault is. Each was validated against its schema when written, and AES-GCM authenticates
        it (bound to its row, key and category), so what decrypts is exactly that: no pydantic models.
        """
        for _, cat, plaintext in self._decrypt_records(category, start, end, None, newest, skip_newest):
            record = json.loads(plaintext)
            if not isinstance(record, dict) or record.get("category") != cat:
                raise InvalidRecord()
            yield record

    def _decrypt_records(
        self,
        category: str | None,
        start: int | None,
        end: int | None,
        record_ids: Sequence[int] | None,
        newest: int | None = None,
        skip_newest: int = 0,
    ) -> Iterator[tuple[int, str, bytes]]:
        """(record id, category, plaintext) in time order; any tampering raises the opaque InvalidRecord."""
        sql, params = _record_filter(category, start, end, record_ids)
        query = f"SELECT record_id, category, key_id, blob FROM records{sql} ORDER BY start, record_id"
        if newest is not None:  # the page counted from the newest, put back in time order
            query = (
                f"SELECT * FROM (SELECT record_id, category, key_id, blob, start FROM records{sql} "
                "ORDER BY start DESC, record_id DESC LIMIT ? OFFSET ?) ORDER BY start, record_id"
            )
            params = [*params, newest, skip_newest]
        ciphers: dict[str, Envelope] = {}
        for record_id, cat, key_id, blob, *_ in self.db.execute(query, params):
            cipher = ciphers.get(key_id)
            if cipher is None:
                try:
                    cipher = ciphers[key_id] = Envelope(self.data_keys.unwrap(key_id))
                except KeyError:
                    raise InvalidRecord() from None
            yield record_id, cat, cipher.open(blob, record_context(RECORDS_TABLE, record_id, key_id, cat))

    def newest_record_start(self, category: str | None = None) -> int | None:
        """The start of the most recent stored record (epoch seconds), without decrypting anything."""
        # One index seek per category (records_category_start): MAX over the whole table would scan it.
        categories = [category] if category is not None else _ALL_CATEGORIES
        union = " UNION ALL ".join("SELECT MAX(start) AS s FROM records WHERE category = ?" for _ in categories)
        row = self.db.execute(f"SELECT MAX(s) FROM ({union})", categories).fetchone()
        return None if row[0] is None else int(row[0])

    def count_windows(self, category: str | None = None, since: int | None = None, until: int | None = None) -> int:
        if since is None and until is None:  # kept by triggers (schema 0005_record_counts), not counted
            where, args = (" WHERE category = ?", [str(category)]) if category is not None else ("", [])
            return int(self.db.execute(f"SELECT COALESCE(SUM(n), 0) FROM record_counts{where}", args).fetchone()[0])
        sql, params = _record_filter(category, since, until, None)
        return int(self.db.execute(f"SELECT COUNT(*) FROM records{sql}", params).fetchone()[0])

    def hours_with_data(self, since: int | None = None) -> list[int]:
        """The hours (epoch seconds // 3600) in which some stored record starts (``since`` onwards), without
        decrypting any."""
        sql, params = _record_filter(None, since, None, None)
        return [int(hour) for (hour,) in self.db.execute(f"SELECT DISTINCT start / 3600 FROM records{sql}", params)]

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"``, or its first finding."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def path(self) -> Path:
        return self.layout.vault_db


def _record_filter(
    category: str | None, start: int | None, end: int | None, record_ids: Sequence[int] | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if category is not None:
        clauses.append("category = ?")
        params.append(str(category))
    elif start is not None or end is not None:
        # Naming every category lets SQLite seek the period in records_category_start, category by
        # category, instead of scanning the whole table for it.
        clauses.append(f"category IN ({', '.join('?' * len(_ALL_CATEGORIES))})")
        params.extend(_ALL_CATEGORIES)
    if start is not None:
        clauses.append("start >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start < ?")
        params.append(end)
    if record_ids is not None:
        clauses.append(f"record_id IN ({', '.join('?' * len(record_ids))})")
        params.extend(record_ids)
    return ((" WHERE " + " AND ".join(clauses)) if clauses else "", params)


def _refuse_future(records: Sequence[AnyWindow], now: datetime) -> None:
    """No record may end more than ``FUTURE_TOLERANCE_SECONDS`` after ``now``; otherwise none is stored."""
    latest = now.timestamp() + FUTURE_TOLERANCE_SECONDS
    for record in records:
        if record.end > latest:
            ahead = datetime.fromtimestamp(record.end, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            raise RecordInFuture(
                f"a {record.category} record ends in the future ({ahead}), more than "
                f"{FUTURE_TOLERANCE_SECONDS // 60} minutes after this computer's clock "
                f"({iso(now)}); nothing was stored. Check the clock (timedatectl status)."
            )


class _Coverage:
    """Which records may be written now: consent must cover them, and no erasure may have overtaken them.

    - the record names a grant of its category that began before the window ended;
    - that grant is still in force: after a revocation nothing more of it is written, even a window
      that was still open when it came (the agent drops those; this is the backstop);
    - no erasure of its category, or of a period holding its start, happened after the window began
      (otherwise data captured before an erasure could be written after it).
    """

    def __init__(self, spans: dict[str, ReceiptSpan], erasures: list[LedgerEntry]) -> None:
        self._spans = {
            rid: (span.receipt.category.value, span.granted_at.timestamp(), span.ended_at is not None)
            for rid, span in spans.items()
        }
        self._erased_after: dict[str, float] = {}  # category -> latest erasure time
        self._erased_periods: list[tuple[float, float, float]] = []  # (first second, end, erased at)
        for entry in erasures:
            at = parse_iso(entry.at).timestamp()
            for category in entry.body.get("erased_categories", []):
                self._erased_after[category] = max(at, self._erased_after.get(category, 0.0))
            if entry.body.get("scope") == "period":
                first = day_start(entry.body["first_day"])
                last = day_start(entry.body["last_day"]) + DAY_SECONDS
                self._erased_periods.append((first, last, at))

    def check(self, record: AnyWindow) -> None:
        what = f"a {record.category} record"
        span = self._spans.get(record.receipt_id)
        if span is None or span[0] != record.category:
            raise ConsentError(f"{what} names no grant of {record.category}; nothing was stored")
        if record.end <= span[1]:
            raise ConsentError(f"{what} ends before its grant; nothing was stored")
        if span[2]:
            raise ConsentError(f"{what} belongs to a withdrawn grant; nothing was stored")
        if record.start < self._erased_after.get(record.category, float("-inf")):
            raise ConsentError(f"{what} began before its category was erased; nothing was stored")
        if any(first <= record.start < end and record.start < at for first, end, at in self._erased_periods):
            raise ConsentError(f"{what} lies in an erased period; nothing was stored")


def _read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
