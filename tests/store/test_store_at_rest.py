"""Records are encrypted at rest in the store; erasure destroys the subject's key, so no plaintext survives.

The attack: read the store's files (the PostgreSQL data directory with its WAL, or the ``dir`` backend's
folder) and look for a record's content, before and after the subject's erasure. The needle is an app
token from the batch's payload: a string unique to this batch (re-keyed per batch), which PostgreSQL's
JSONB and SQLite keep byte for byte when they store it in clear. A canary written in clear into the
same store proves the search looks where the data lands.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg.conninfo import make_conninfo

from devkit import store_kit
from devkit.components import require
from devkit.store_kit import T0, Agent, FixedClock, Harness, pg_dsn, postgres_available, running_store
from protocol import decode_payload, sign_erasure, subject_digest
from protocol.envelope import Context, Envelope, context, new_key, open_blob
from protocol.errors import InvalidRecord, KeyUnavailable
from protocol.keyfile import read_key_file
from store.backend import StoredRecord
from store.export import export_parquet
from store.keys import RECORDS_KEK_FILE, StoreKeys
from store.record_keys import (
    RecordKeyring,
    StoreRecordAad,
    record_contexts,
    record_fields,
    rewrap_subject_keys,
    subject_key_context,
)
from store.records_kek import RecordsKek, kek_id
from store.service import StoreService


def generic_record_aad(batch_id: str, record_index: int, subject_digest: str, category: str) -> Context:
    """A record's context built whole, without the store's template: what the template must equal."""
    return context({**record_fields(batch_id, subject_digest, category), "record_index": record_index})


backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends


def _psql_admin(sql: str) -> str:
    port = str(urlparse(pg_dsn()).port or 5432)
    out = subprocess.run(
        ["su", "postgres", "-c", f"psql -X -qtA -p {port} -c {sql!r}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


def _pg_data_dir() -> Path:
    """The cluster's data directory (PGDATA, WAL included), when this process may read it."""
    readable = os.geteuid() == 0 and shutil.which("su") is not None
    data_dir = None
    if readable:
        try:
            data_dir = Path(_psql_admin("SHOW data_directory"))
        except (subprocess.SubprocessError, OSError):
            data_dir = None
    require(
        data_dir is not None and os.access(data_dir, os.R_OK | os.X_OK),
        "the PostgreSQL data directory, readable by this test",
        "run the test as root on the machine that runs PostgreSQL",
    )
    assert data_dir is not None
    return data_dir


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue  # sockets, files removed while walking
    return hits


def _on_disk(store: Harness, needle: bytes) -> list[str]:
    """Files of the store's storage whose bytes contain ``needle``, after everything reached disk."""
    if store.backend.kind == "dir":
        return _files_containing(store.backend.root, needle)  # type: ignore[attr-defined]
    _psql_admin("CHECKPOINT")  # flush shared buffers into the data files; the WAL already has it
    return _files_containing(_pg_data_dir(), needle)


def _write_canary(store: Harness) -> bytes:
    canary = ("canary-" + secrets.token_hex(12)).encode()
    with store.backend.transaction() as tx:
        tx._q("CREATE TABLE IF NOT EXISTS canary (t TEXT NOT NULL)")  # type: ignore[attr-defined]
        tx._q("INSERT INTO canary (t) VALUES (?)", (canary.decode(),))  # type: ignore[attr-defined]
    return canary


def _upload(store: Harness, agent: Agent, n_records: int = 12) -> tuple[str, bytes]:
    """Ship one batch; return its id and a needle: an app token that only this batch's records contain."""
    manifest, payload = agent.next_batch(n_records)
    with store.client(agent) as c:
        c.submit_manifest(manifest)
        store.approve(manifest)
        c.upload(agent.seal(manifest, payload, store.keys.seal.public_bytes))
    tokens = {f["app"] for r in decode_payload(payload).records if r["category"] == "apps" for f in r["focus"]}
    needle = next(t for t in sorted(tokens) if t.startswith("anon:"))
    assert needle.encode() in payload
    return manifest.batch_id, needle.encode()


def _exported_apps(out: Path) -> set[str]:
    focus = pq.read_table(out / "data" / "apps.parquet").column("focus").to_pylist()
    return {f["app"] for row in focus for f in row}


def test_records_are_encrypted_at_rest_and_erasure_leaves_no_plaintext(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path) as store:
        alice, bob = Agent(), Agent()
        store.enroll(alice)
        store.enroll(bob)
        _, needle = _upload(store, alice)
        _, bob_needle = _upload(store, bob)
        canary = _write_canary(store)
        assert _on_disk(store, canary), "the search does not see what the store writes in clear"

        # Stored, not erased: the record is on disk only as ciphertext.
        assert _on_disk(store, needle) == []
        assert _on_disk(store, bob_needle) == []
        export_parquet(store.backend, store.keys, tmp_path / "export", now=T0)  # export decrypts
        assert needle.decode() in _exported_apps(tmp_path / "export")

        with store.client(alice) as a:
            receipt = a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        assert receipt.log.entry.body["records"] == 12
        assert _on_disk(store, needle) == []
        with store.backend.transaction() as tx:
            assert tx.get_subject_key(subject_digest(alice.subject)) is None  # crypto-shredded
            assert tx.get_subject_key(subject_digest(bob.subject)) is not None
        later = export_parquet(store.backend, store.keys, tmp_path / "later", now=T0)
        assert later.files["data/apps.parquet"] == 4  # bob's 4 apps windows, decrypted


def _key_folder_keks(key_dir: Path) -> list[bytes]:
    """Every records KEK an attacker who copies the store's key folder now gets (the file and any leftover)."""
    return [read_key_file(p, "aes256") for p in sorted(key_dir.iterdir()) if p.name.startswith(RECORDS_KEK_FILE)]


def _pg_table_files(store: Harness, table: str) -> list[Path]:
    """The files of one table's current heap (every segment and fork) in the cluster's data directory."""
    with store.backend.transaction() as tx:
        relative = tx._q(f"SELECT pg_relation_filepath('{table}')").fetchone()[0]  # type: ignore[attr-defined]
    base = _pg_data_dir() / relative
    return sorted(p for p in base.parent.iterdir() if p.name == base.name or p.name.startswith(base.name + "."))


def test_an_erased_subject_key_found_in_the_data_files_does_not_open(backend_kind: str, tmp_path: Path) -> None:
    """The attack on erasure: after it (and a CHECKPOINT), copy the store's data files -- heap files and pg_wal,
    or SQLite's catalog and WAL -- and its key folder; find the subject's wrapped key there; unwrap it with the
    records KEK; decrypt the erased records. Every step but the last may succeed; the last must not."""
    key_dir = tmp_path / "keys"
    with running_store(backend_kind, tmp_path, key_dir=key_dir, key_purge_retry_seconds=0.2) as store:
        alice, bob = Agent(), Agent()
        store.enroll(alice)
        store.enroll(bob)
        alice_batch, _ = _upload(store, alice)
        _upload(store, bob)
        digest = subject_digest(alice.subject)
        with store.backend.transaction() as tx:
            wrapped = tx.get_subject_key(digest)
            sealed = next(iter(tx.iter_records("keyboard", [alice_batch])))
        assert wrapped is not None
        (kek_before,) = _key_folder_keks(key_dir)
        assert open_blob(kek_before, wrapped, subject_key_context(digest))  # the attack works on a live key
        assert _on_disk(store, wrapped), "the search does not see the wrapped key where the store keeps it"

        with store.client(alice) as a:
            a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))

        copies = _on_disk(store, wrapped)  # dead tuples, pg_wal: whatever is still there after a CHECKPOINT
        for kek in _key_folder_keks(key_dir):
            try:
                subject_key = open_blob(kek, wrapped, subject_key_context(digest))
            except InvalidRecord:
                continue
            aad = record_contexts(sealed.batch_id, sealed.subject, sealed.category)(sealed.index)
            plain = Envelope(subject_key).open(sealed.sealed, aad)
            pytest.fail(f"the erased subject's key (copies in {copies}) opens; a record reads {plain[:40]!r}")
        if backend_kind == "postgres":  # the key table itself is rewritten: no dead tuple of the key is left
            _wait_for_key_table_without(store, wrapped)  # at once, or once another test's open write ends

        later = export_parquet(store.backend, store.keys, tmp_path / "later", now=T0)
        assert later.files["data/apps.parquet"] == 4  # bob's records still open under the new KEK
    assert _key_folder_keks(key_dir) != [kek_before]


def _key_table_holds(store: Harness, needle: bytes) -> bool:
    """Whether the key table's own files hold ``needle``: PostgreSQL's heap (pg_wal keeps it until recycled,
    under a KEK that no longer exists), or the whole ``dir`` catalog with its WAL."""
    if store.backend.kind == "dir":
        return bool(_on_disk(store, needle))
    _psql_admin("CHECKPOINT")  # the table's pages reach its file
    return any(needle in p.read_bytes() for p in _pg_table_files(store, "subject_keys"))


def _wait_for_key_table_without(store: Harness, needle: bytes, timeout: float = 120.0) -> None:
    """The store's purge retries while a snapshot older than the erasure is open in its database, or a write
    anywhere on the server (here, maybe another test's); ``timeout`` only bounds a failure, it times nothing."""
    deadline = time.monotonic() + timeout
    while _key_table_holds(store, needle):
        assert time.monotonic() < deadline, "the key table still holds the erased key's dead row"
        time.sleep(0.2)


class _Backup:
    """What a backup holds for its whole run, in its own connection. PostgreSQL's ``pg_dump``: a REPEATABLE
    READ snapshot and an ACCESS SHARE lock on every table (``snapshot``); or a shorter reader that took its
    lock after the erasure and holds no snapshot. SQLite (``sqlite3 .dump``, a long export): a read
    transaction on the catalog."""

    def __init__(self, store: Harness, *, snapshot: bool) -> None:
        self.session: Any
        if store.backend.kind == "dir":
            self.session = sqlite3.connect(store.backend.root / "catalog.sqlite3", isolation_level=None)  # type: ignore[attr-defined]
            self.session.execute("BEGIN")
        else:
            self.session = psycopg.connect(pg_dsn(), options=f"-c search_path={store.backend.schema}")  # type: ignore[attr-defined]
            self.session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" if snapshot else "BEGIN")
        if snapshot:
            self.reads()  # the snapshot is taken here
        if store.backend.kind == "postgres":
            self.session.execute("LOCK TABLE subject_keys, records, batches IN ACCESS SHARE MODE")

    def reads(self) -> int:
        return int(self.session.execute("SELECT count(*) FROM subject_keys").fetchone()[0])

    def end(self) -> None:
        self.session.rollback()
        self.session.close()


def _two_employees_uploaded(store: Harness) -> tuple[Agent, Agent, bytes]:
    """Alice and Bob each shipped a batch; returns them and Alice's wrapped key as the key table keeps it."""
    alice, bob = Agent(), Agent()
    for agent in (alice, bob):
        store.enroll(agent)
        _upload(store, agent)
    with store.backend.transaction() as tx:
        wrapped = tx.get_subject_key(subject_digest(alice.subject))
    assert wrapped is not None
    return alice, bob, wrapped


@pytest.mark.parametrize(
    ("kind", "snapshot"), [("postgres", True), ("postgres", False), ("dir", True)], ids=["pg_dump", "reader", "dir"]
)
def test_an_erasure_during_a_database_backup_answers_and_the_key_table_is_purged_after_it(
    kind: str, snapshot: bool, tmp_path: Path
) -> None:
    """An employee erases while a backup runs. The erasure answers, others keep uploading, the backup is not
    disturbed, and the key table is rewritten once the backup ends. Before: PostgreSQL's VACUUM FULL waited
    for the backup's lock (hours, for a real backup) with every upload queued behind it; SQLite's checkpoint
    waited 60 s for the reader, blocking every upload meanwhile."""
    if kind == "postgres":
        require(postgres_available(), "PostgreSQL", "run: bash scripts/start-postgres.sh")
    with running_store(kind, tmp_path, key_dir=tmp_path / "keys", key_purge_retry_seconds=0.2) as store:
        alice, bob, wrapped = _two_employees_uploaded(store)
        backup = _Backup(store, snapshot=snapshot)
        try:
            with store.client(alice, timeout=20.0) as a:  # the timeout only ends a hang
                receipt = a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
            assert receipt.log.entry.body["records"] == 12
            _upload(store, bob)  # ingest is not queued behind a rewrite waiting for the backup
            assert _key_table_holds(store, wrapped)  # the backup may still read the old row: it is not yet gone
            assert backup.reads() == (2 if snapshot else 1)  # the backup is unharmed, and reads its own moment
        finally:
            backup.end()
        _wait_for_key_table_without(store, wrapped)  # the store retried on its own once the backup ended
        with store.backend.transaction() as tx:
            assert tx.get_subject_key(subject_digest(alice.subject)) is None


def test_a_write_open_in_another_database_of_the_server_holds_the_rewrite_back_too(tmp_path: Path) -> None:
    """A transaction that wrote anything, in any database of the same PostgreSQL server, is still running for
    every snapshot taken after it, the rewrite's own included: PostgreSQL keeps the erased row for it. A
    rewrite then would copy the row and record the rotation as done, and nothing would ever remove it."""
    require(postgres_available(), "PostgreSQL", "run: bash scripts/start-postgres.sh")
    with running_store("postgres", tmp_path, key_dir=tmp_path / "keys", key_purge_retry_seconds=0.2) as store:
        alice, _, wrapped = _two_employees_uploaded(store)
        elsewhere = psycopg.connect(make_conninfo(pg_dsn(), dbname="postgres"))  # another database, same server
        try:
            elsewhere.execute("SELECT txid_current()").fetchone()  # it holds an xid now, as any write does
            with store.client(alice, timeout=20.0) as a:
                a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
            assert _key_table_holds(store, wrapped)  # the search sees the row where it is kept
        finally:
            elsewhere.rollback()
            elsewhere.close()
        _wait_for_key_table_without(store, wrapped)


def test_a_records_kek_rotation_cut_short_by_a_crash_loses_nothing(backend_kind: str, tmp_path: Path) -> None:
    """A crash after the new KEK is staged (the database never named it), or after the re-wrap committed
    (the rename never happened): the next start settles it, and every record still opens."""
    key_dir = tmp_path / "keys"
    with running_store(backend_kind, tmp_path, key_dir=key_dir) as store:
        alice = Agent()
        store.enroll(alice)
        _upload(store, alice, 6)
        (original,) = _key_folder_keks(key_dir)

        store.keys.records.stage()  # step 1 done, then the crash
        assert len(_key_folder_keks(key_dir)) == 2
        StoreService(store.backend, StoreKeys.load_or_create(key_dir)[0], store.settings, FixedClock())  # restart
        assert _key_folder_keks(key_dir) == [original]  # the staged KEK wrapped nothing: deleted

        fresh = store.keys.records.stage()
        with store.backend.transaction() as tx:  # step 2 committed, then the crash before the rename
            assert rewrap_subject_keys(tx, original, fresh) == 1
            tx.set_records_kek(kek_id(fresh), rotation_due=False)
        restarted = StoreKeys.load_or_create(key_dir)[0]
        assert restarted.records.key == original  # the folder still says the old KEK
        StoreService(store.backend, restarted, store.settings, FixedClock())
        assert _key_folder_keks(key_dir) == [fresh] and restarted.records.key == fresh  # promoted
        result = export_parquet(store.backend, StoreKeys.load_or_create(key_dir)[0], tmp_path / "export", now=T0)
        assert result.files == {"data/keyboard.parquet": 2, "data/mouse.parquet": 2, "data/apps.parquet": 2}
        _upload(store, alice, 3)  # the serving store process follows the new KEK too


def test_every_erasure_replaces_the_records_kek_and_the_others_still_open(backend_kind: str, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    with running_store(backend_kind, tmp_path, key_dir=key_dir) as store:
        agents = [Agent() for _ in range(3)]
        for agent in agents:
            store.enroll(agent)
            _upload(store, agent, 3)
        keks = _key_folder_keks(key_dir)
        for agent in agents[:2]:
            with store.client(agent) as a:
                a.request_erasure(sign_erasure(agent.device, uuid.uuid4().hex, agent.subject, created=T0))
                keks += _key_folder_keks(key_dir)
                again = a.request_erasure(sign_erasure(agent.device, uuid.uuid4().hex, agent.subject, created=T0))
            assert again.log.entry.body["records"] == 0
            assert _key_folder_keks(key_dir) == keks[-1:]  # nothing shredded the second time: no new KEK
        assert len(set(keks)) == 3  # one new KEK per erasure that shredded a key
        last = keks[-1]
        with store.backend.transaction() as tx:
            assert tx.records_kek() == (kek_id(last), False)
        result = export_parquet(store.backend, store.keys, tmp_path / "export", now=T0)
        assert sum(result.files.values()) == 3  # the third subject's records, under the latest KEK


@pytest.mark.parametrize("kind", ["dir"])
def test_dir_backend_leaves_no_wrapped_key_after_erasure(kind: str, tmp_path: Path) -> None:
    """SQLite's secure_delete zeroes the key row and the WAL is checkpointed: the wrapped key is gone too."""
    with running_store(kind, tmp_path) as store:
        alice = Agent()
        store.enroll(alice)
        _upload(store, alice)
        digest = subject_digest(alice.subject)
        with store.backend.transaction() as tx:
            wrapped = tx.get_subject_key(digest)
        assert wrapped is not None and _on_disk(store, wrapped)
        with store.client(alice) as a:
            a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        assert _on_disk(store, wrapped) == []


def test_record_aad_is_the_generic_envelope_form() -> None:
    aad = StoreRecordAad("ab" * 16, "cd" * 32)
    for index, category in ((0, "keyboard"), (17, "apps"), (123456, "files")):
        assert aad.for_record(index, category) == generic_record_aad("ab" * 16, index, "cd" * 32, category)


def test_a_record_opens_only_in_its_own_place(backend_kind: str, tmp_path: Path) -> None:
    """Ciphertexts swapped between rows, or a row relabelled, do not decrypt: the export fails closed."""
    with running_store(backend_kind, tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        batch_id, _ = _upload(store, agent, 6)
        keyring = RecordKeyring(store.keys.records)
        with store.backend.transaction() as tx:
            rows = list(tx.iter_records("keyboard", [batch_id]))
            assert [body["category"] for _, body in keyring.open_records(tx, rows)] == ["keyboard", "keyboard"]
            first, second = rows
            swapped = StoredRecord(first.batch_id, first.subject, first.category, first.index, second.sealed)
            relabelled = StoredRecord(first.batch_id, first.subject, "mouse", first.index, first.sealed)
            other_subject = StoredRecord(first.batch_id, "00" * 32, first.category, first.index, first.sealed)
            for forged in (swapped, relabelled):
                with pytest.raises(InvalidRecord):
                    list(keyring.open_records(tx, [forged]))
            assert list(keyring.open_records(tx, [other_subject])) == []  # no key for that subject: nothing
        with store.backend.transaction() as tx:  # an attacker with database access swaps two ciphertexts
            tx._q("UPDATE records SET body = ? WHERE batch_id = ? AND idx = ?", (second.sealed, batch_id, first.index))  # type: ignore[attr-defined]
        with pytest.raises(InvalidRecord):
            export_parquet(store.backend, store.keys, tmp_path / "export", now=T0)


def test_the_records_kek_is_a_private_key_file_and_never_printed(tmp_path: Path) -> None:
    keys, created = StoreKeys.load_or_create(tmp_path / "keys")
    kek_file = tmp_path / "keys" / RECORDS_KEK_FILE
    kek = keys.records.key
    assert created and len(kek) == 32 and oct(kek_file.stat().st_mode & 0o777) == "0o600"
    assert StoreKeys.load_or_create(tmp_path / "keys")[0].records.key == kek
    assert kek.hex() not in repr(keys) and str(kek) not in repr(keys) and str(kek) not in repr(keys.records)


def test_the_dir_catalog_and_its_wal_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """SQLite creates a database under the process umask (0644, or 0666 under umask 000), and its WAL and
    shared-memory files with the database's mode; the 0700 data folder must not be their only guard."""
    from store.backends.dir import DirBackend

    old_umask = os.umask(0)
    try:
        backend = DirBackend(tmp_path / "store-data")
        try:
            with backend.transaction() as tx:
                tx.set_records_kek("k" * 16, rotation_due=False)  # a write: the WAL and its index exist now
            files = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "store-data").iterdir()}
        finally:
            backend.close()
    finally:
        os.umask(old_umask)
    assert {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"} <= set(files)
    assert files == {name: "0o600" for name in files}


def test_another_records_kek_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with running_store("dir", tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        _upload(store, agent, 3)
        wrong = StoreKeys(store.keys.seal, store.keys.log, RecordsKek(new_key()))
        with pytest.raises(KeyUnavailable, match=RECORDS_KEK_FILE):
            export_parquet(store.backend, wrong, tmp_path / "export", now=T0)


def test_a_database_restored_from_before_an_erasure_is_refused_without_undoing_the_erasure(tmp_path: Path) -> None:
    """The operator puts back a database backup taken before an erasure, with the key folder as it is now
    (the docs say to keep the two apart). Every subject key in that copy is wrapped under a KEK an erasure
    replaced on purpose. ``store serve`` must stop with words that say so, and must not send the operator to
    restore an older key folder: with that, the erased person's records would open again."""
    import sqlite3
    import sys

    store_dir = tmp_path / "store"
    key_dir = store_dir / "keys"
    with running_store("dir", tmp_path, key_dir=key_dir) as store:
        alice, bob = Agent(), Agent()
        for agent in (alice, bob):
            store.enroll(agent)
            _upload(store, agent, 3)
        backup = tmp_path / "backup.sqlite3"
        with sqlite3.connect(store.backend.root / "catalog.sqlite3") as live, sqlite3.connect(backup) as copy:  # type: ignore[attr-defined]
            live.backup(copy)
        with store.client(alice) as a:
            a.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
    (tmp_path / "store-data").rename(store_dir / "data")
    for leftover in (store_dir / "data").glob("catalog.sqlite3*"):
        leftover.unlink()
    shutil.copyfile(backup, store_dir / "data" / "catalog.sqlite3")
    keks = _key_folder_keks(key_dir)

    policy = store_kit.write_policy(tmp_path / "policy.toml", store.stewards)

    def serve(folder: Path) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from admin.store_cmd import store; store()", "serve", "--backend", "dir"]
            + ["--data", str(folder), "--policy", str(policy), "--port", str(store_kit.free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        return " ".join(done.stderr.split())

    said = serve(store_dir)
    assert "older than the last erasure" in said, said
    assert "restore that folder" not in said and "Do not put back an older key folder" in said, said
    assert _key_folder_keks(key_dir) == keks  # nothing was changed: no KEK made, none removed

    # Told apart from the other mistake, a key folder that is not this store's at all (here a new one).
    shutil.copytree(store_dir / "data", tmp_path / "elsewhere" / "data")
    said = serve(tmp_path / "elsewhere")
    assert "another key folder than the one its records were stored with" in said, said
    assert "older than the last erasure" not in said, said


def _make_legacy(store: Harness, batch_id: str, payload: bytes) -> None:
    """Turn a stored batch back into how a store before record encryption kept it: plaintext."""
    records = decode_payload(payload).records
    with store.backend.transaction() as tx:
        tx._q("DELETE FROM records WHERE batch_id = ?", (batch_id,))  # type: ignore[attr-defined]
        tx._q("DELETE FROM subject_keys")  # type: ignore[attr-defined]
        if store.backend.kind == "postgres":
            tx._q(  # type: ignore[attr-defined]
                "CREATE TABLE legacy_plain_records (batch_id TEXT NOT NULL, subject_digest TEXT NOT NULL, "
                "category TEXT NOT NULL, start_ts BIGINT NOT NULL, end_ts BIGINT NOT NULL, body JSONB NOT NULL)"
            )
            digest = tx.get_batch(batch_id).subject_digest  # type: ignore[union-attr]
            for r in records:
                tx._q(  # type: ignore[attr-defined]
                    "INSERT INTO legacy_plain_records VALUES (?, ?, ?, ?, ?, ?::jsonb)",
                    (batch_id, digest, r["category"], r["start"], r["end"], json.dumps(r)),
                )
    if store.backend.kind == "dir":
        path = store.backend.legacy_path(batch_id)  # type: ignore[attr-defined]
        path.parent.mkdir(parents=True)
        path.write_bytes(payload)


def test_records_an_older_store_kept_in_clear_are_sealed_on_start(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        manifest, payload = agent.next_batch(9)
        with store.client(agent) as c:
            c.submit_manifest(manifest)
            store.approve(manifest)
            c.upload(agent.seal(manifest, payload, store.keys.seal.public_bytes))
        _make_legacy(store, manifest.batch_id, payload)
        needle = next(
            f["app"].encode() for r in decode_payload(payload).records if r["category"] == "apps" for f in r["focus"]
        )
        with store.backend.transaction() as tx:
            assert tx.legacy_batches() == [manifest.batch_id]

        StoreService(store.backend, store.keys, store.settings, FixedClock())  # a store starting on old data
        with store.backend.transaction() as tx:
            assert tx.legacy_batches() == []
            assert tx.get_subject_key(subject_digest(agent.subject)) is not None
        if backend_kind == "dir":
            assert not (store.backend.root / "batches").exists() or not any(
                (store.backend.root / "batches").rglob("*.json")
            )  # type: ignore[attr-defined]
        result = export_parquet(store.backend, store.keys, tmp_path / "export", now=T0)
        assert result.files == {"data/keyboard.parquet": 3, "data/mouse.parquet": 3, "data/apps.parquet": 3}
        assert needle.decode() in _exported_apps(tmp_path / "export")
        with store.client(agent) as a:
            receipt = a.request_erasure(sign_erasure(agent.device, uuid.uuid4().hex, agent.subject, created=T0))
        assert receipt.log.entry.body["records"] == 9
        if backend_kind == "dir":
            assert _on_disk(store, needle) == []
