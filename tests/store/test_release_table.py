"""The release table (store.releases): build, read, erasure reaching every file, expiry, on both catalogs."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from devkit.components import require
from devkit.store_kit import PG_DSN_ENV, pg_dsn, postgres_available
from devkit.table_files import files_holding
from store.releases import ReleaseTable, SnapshotExpired, column_dictionary, release_rows
from store.releases.rows import RELEASE_SCHEMA
from store.releases.table import EmptyRelease, ReleaseExists, UnknownRelease
from tests.store.release_kit import open_release_table, records

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["dir", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _build(table: ReleaseTable, release_id: str, subjects: dict[str, str]) -> None:
    recs = [r for subject, receipt in subjects.items() for r in records(subject, receipt)]
    table.build(release_id, release_rows(recs, release_id, table.aliases(release_id)))


def test_release_reads_back_every_row_with_lineage_and_utc_times(kind: str, tmp_path: Path) -> None:
    with open_release_table(kind, tmp_path) as table:
        _build(table, "r1", {"s-a": "rcpt-a", "s-b": "rcpt-b"})
        rows = table.read("r1")
        assert rows.num_rows == 2 * 2 * 3 * 4
        assert set(rows["category"].to_pylist()) == {"keyboard", "mouse", "apps", "files"}
        assert set(rows["receipt_id"].to_pylist()) == {"rcpt-a", "rcpt-b"}
        assert rows.schema.field("start").type == pa.timestamp("us", tz="UTC")
        # The subject and batch are release-scoped pseudonyms, never the store's digests or batch ids.
        assert "s-a" not in rows["subject"].to_pylist() and len(set(rows["subject"].to_pylist())) == 2
        assert not any(b.startswith("batch-") for b in rows["batch_ref"].to_pylist())
        files = table.data_files("r1")
        # partitioned by release, category and day: 4 categories x 2 days
        assert len(files) == 8 and all("category=" in f and "day=" in f for f in files)


def test_two_releases_alias_one_subject_differently(kind: str, tmp_path: Path) -> None:
    with open_release_table(kind, tmp_path) as table:
        _build(table, "r1", {"s-a": "rcpt-a"})
        _build(table, "r2", {"s-a": "rcpt-a"})
        one = set(table.read("r1")["subject"].to_pylist())
        two = set(table.read("r2")["subject"].to_pylist())
        assert len(one) == len(two) == 1 and one != two
        assert table.read("r1").num_rows == table.read("r2").num_rows == 24  # each reads only its own rows


def test_empty_release_is_refused_and_builds_nothing(kind: str, tmp_path: Path) -> None:
    with open_release_table(kind, tmp_path) as table:
        with pytest.raises(EmptyRelease, match="no rows"):
            table.build("empty", RELEASE_SCHEMA.empty_table())
        with pytest.raises(UnknownRelease):
            table.read("empty")
        assert table.releases() == []


def test_a_release_is_built_once(kind: str, tmp_path: Path) -> None:
    with open_release_table(kind, tmp_path) as table:
        _build(table, "r1", {"s-a": "rcpt-a"})
        with pytest.raises(ReleaseExists):
            _build(table, "r1", {"s-b": "rcpt-b"})
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {"rcpt-a"}


def test_warehouse_is_private(tmp_path: Path) -> None:
    with open_release_table("dir", tmp_path) as table:
        _build(table, "r1", {"s-a": "rcpt-a"})
        root = Path(table.location)
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"


def test_erasure_removes_the_subject_from_every_file_after_the_grace_period(kind: str, tmp_path: Path) -> None:
    erased, kept = "rcpt-erased-5f0c2e9b", "rcpt-kept-a81d44c7"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with open_release_table(kind, tmp_path, grace=timedelta(hours=72)) as table:
        _build(table, "r1", {"s-erased": erased, "s-kept": kept})
        pinned = table.read("r1")  # a reader's copy of the snapshot id, taken before the erasure
        snapshot_before = table.snapshot_id("r1")
        warehouse = Path(table.location)
        assert files_holding(warehouse, erased) and files_holding(warehouse, kept)

        result = table.erase_subject("s-erased", now=start)
        assert result.releases == ("r1",) and result.rows_deleted == 24
        assert result.bytes_rewritten > 0 and len(result.partitions_touched) == 8
        # current data at once: the release's tag reads without the subject
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {kept}
        # within the grace period the old snapshot still exists (and holds the rows)
        assert table.expire(start + timedelta(hours=71)).files_removed == 0
        assert files_holding(warehouse, erased)
        assert table.read_snapshot(snapshot_before, "r1").num_rows == pinned.num_rows

        expiry = table.expire(start + timedelta(hours=72))
        assert expiry.snapshots_expired >= 1 and expiry.files_removed > 0
        assert files_holding(warehouse, erased) == []
        assert files_holding(warehouse, kept)  # the control subject's rows are still there
        with pytest.raises(SnapshotExpired, match="snapshot expired by erasure"):
            table.read_snapshot(snapshot_before, "r1")
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {kept}


def test_zero_grace_expires_at_once(kind: str, tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with open_release_table(kind, tmp_path, grace=timedelta(0)) as table:
        _build(table, "r1", {"s-erased": "rcpt-gone-77", "s-kept": "rcpt-stays-88"})
        table.erase_subject("s-erased", now=now)
        table.expire(now)
        assert files_holding(Path(table.location), "rcpt-gone-77") == []


def test_erasure_rewrites_only_the_partitions_holding_the_subject(tmp_path: Path) -> None:
    with open_release_table("dir", tmp_path) as table:
        recs = records("s-a", "rcpt-a", days=1) + records("s-b", "rcpt-b", days=3)
        recs = [r for r in recs if not (r.subject == "s-a" and r.category != "mouse")]
        table.build("r1", release_rows(recs, "r1", table.aliases("r1")))
        before = set(table.data_files("r1"))
        result = table.erase_subject("s-a")
        assert result.partitions_touched == (f"r1/mouse/{datetime.fromtimestamp(1_760_000_000, UTC).date()}",)
        after = set(table.data_files("r1"))
        assert len(before - after) == 1 and len(after - before) == 1  # one file replaced, 11 untouched


def test_erasing_an_unknown_subject_changes_nothing(kind: str, tmp_path: Path) -> None:
    with open_release_table(kind, tmp_path) as table:
        _build(table, "r1", {"s-a": "rcpt-a"})
        snapshot = table.snapshot_id("r1")
        result = table.erase_subject("s-nobody")
        assert result.rows_deleted == 0 and result.releases == () and result.snapshot_id is None
        assert table.snapshot_id("r1") == snapshot


def test_column_dictionary_documents_every_column_from_the_record_models() -> None:
    docs = column_dictionary()
    assert [d.name for d in docs] == RELEASE_SCHEMA.names
    undocumented = [d.name for d in docs if not d.meaning]
    assert undocumented == []
    start = next(d for d in docs if d.name == "start")
    assert start.unit == "UTC time" and start.meaning == "when the time window began (a UTC timestamp)"


_KILLED_BUILD = """
import sys
from datetime import timedelta
from pathlib import Path
from store.releases import ReleaseTable, release_rows
from tests.store.release_kit import records

table = ReleaseTable.open(None, data_dir=Path(sys.argv[1]), grace=timedelta(hours=72))
rows = release_rows(records("s-crash", sys.argv[2], days=4, per_day=5000), "r-crash", table.aliases("r-crash"))
print("writing", flush=True)
table.build("r-crash", rows)
print("built", flush=True)
"""


def test_a_build_killed_while_writing_leaves_no_file_behind_after_housekeeping(tmp_path: Path) -> None:
    """A build killed between writing its data files and committing them (a crash, a kill -9, a reboot)
    leaves files no snapshot names: no erasure can find the rows in them, so housekeeping removes them."""
    import time

    from store.backends.dir import DirBackend

    value = "rcpt-crash-" + secrets.token_hex(6)
    data = tmp_path / "store"
    DirBackend(data / "data").close()
    with open_release_table("dir", tmp_path) as table:
        _build(table, "r1", {"s-kept": "rcpt-kept-6b1f"})  # a release that stays, and its files with it
        warehouse = Path(table.location)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD, str(data), value], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        deadline = time.monotonic() + 120
        # Killed once half its 16 data files (4 categories x 4 days) are on disk: the commit comes after the last.
        while len([p for p in warehouse.rglob("*.parquet") if "release_id=r-crash" in str(p)]) < 8:
            assert child.poll() is None and time.monotonic() < deadline, "the build ended before it was killed"
            time.sleep(0.002)
        child.kill()
    finally:
        child.wait(timeout=60)
    with open_release_table("dir", tmp_path) as table:
        with pytest.raises(UnknownRelease):
            table.read("r-crash")
        assert files_holding(warehouse, value), "the killed build left no whole file behind"
        # The employee erases: the rows are in no snapshot, so the erasure finds nothing to delete ...
        assert table.erase_subject("s-crash").rows_deleted == 0
        # ... and the next housekeeping run (store serve runs one every 15 minutes) removes the files.
        expiry = table.housekeep(datetime.now(UTC))[1]
        assert expiry.files_removed > 0
        assert files_holding(warehouse, value) == []
        assert not [p for p in warehouse.rglob("*") if "release_id=r-crash" in str(p) and p.is_file()]
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {"rcpt-kept-6b1f"}  # what a snapshot names stays
        # The release can be built again, and a later run keeps every file it needs.
        _build(table, "r-crash", {"s-again": value})
        table.housekeep(datetime.now(UTC))
        assert table.read("r-crash").num_rows == 24 and set(table.read("r-crash")["receipt_id"].to_pylist()) == {value}


_CUT_BUILD = """
import sys
from pathlib import Path
from store.releases import ReleaseTable, release_rows
from tests.store.release_kit import records

data, dsn, schema = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
table = ReleaseTable.open(None, data_dir=data, backend="postgres", dsn=dsn, schema=schema)
recs = records("s-gone", sys.argv[4]) + records("s-stays", sys.argv[5])
table.build("r-cut", release_rows(recs, "r-cut", table.aliases("r-cut")))
"""


@contextmanager
def _with_a_build_killed_after_its_rows_committed(tmp_path: Path, gone: str, stays: str) -> Iterator[ReleaseTable]:
    """A PostgreSQL-catalog table (grace period 0) holding release "r1", and the rows of "r-cut" (subjects
    s-gone and s-stays) from a child process killed after the table committed them and before the build
    was registered: a session holds the release's catalog row, so the build stops right there."""
    import time

    import psycopg

    schema = "t_" + secrets.token_hex(6)
    with open_release_table("postgres", tmp_path, grace=timedelta(0), schema=schema) as table:
        _build(table, "r1", {"s-other": "rcpt-other-2d7e"})
        table.aliases("r-cut")  # the catalog row a build makes first
        with psycopg.connect(pg_dsn()) as holder:
            holder.execute(f"SET search_path = {schema}")
            holder.execute("SELECT 1 FROM release_snapshots WHERE release_id = 'r-cut' FOR UPDATE")
            xid = holder.execute("SELECT pg_current_xact_id()::text").fetchone()[0]  # type: ignore[index]
            child = subprocess.Popen(
                [sys.executable, "-c", _CUT_BUILD, str(tmp_path / "store"), pg_dsn(), schema, gone, stays],
                cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while not holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND transactionid::text = %s "
                    "AND NOT granted",
                    (xid,),
                ).fetchone()[0]:  # type: ignore[index]
                    assert child.poll() is None, child.communicate()
                    assert time.monotonic() < deadline, "the build never reached its catalog row"
                    time.sleep(0.05)
                child.kill()  # the rows are committed, the release is not registered as built
            finally:
                child.wait(timeout=60)
                holder.rollback()
        yield table


def test_a_build_killed_after_its_rows_committed_is_reached_by_erasure_and_built_once_again(tmp_path: Path) -> None:
    """An erasure still reaches the rows a killed build committed, and building the release again gives
    each row once."""
    gone, stays = "rcpt-gone-" + secrets.token_hex(6), "rcpt-stays-" + secrets.token_hex(6)
    with _with_a_build_killed_after_its_rows_committed(tmp_path, gone, stays) as table:
        warehouse = Path(table.location)
        assert table.releases() == ["r1"] and files_holding(warehouse, gone)
        erased = table.erase_subject("s-gone")
        assert erased.rows_deleted == 24 and erased.releases == ("r-cut",)
        table.expire(datetime.now(UTC))
        assert files_holding(warehouse, gone) == []
        _build(table, "r-cut", {"s-stays": stays})  # built again, as the store would after the crash
        rows = table.read("r-cut")
        assert rows.num_rows == 24 and set(rows["receipt_id"].to_pylist()) == {stays}
        assert table.read("r1").num_rows == 24


def test_rows_a_killed_build_committed_leave_at_the_next_housekeeping_even_if_never_built_again(
    tmp_path: Path,
) -> None:
    """No retention covers rows of a build that was never registered: housekeeping deletes them (the store
    can build the approved release again), registered like an erasure so their files go after the grace period."""
    gone, stays = "rcpt-gone-" + secrets.token_hex(6), "rcpt-stays-" + secrets.token_hex(6)
    with _with_a_build_killed_after_its_rows_committed(tmp_path, gone, stays) as table:
        warehouse = Path(table.location)
        assert files_holding(warehouse, stays)
        table.housekeep(datetime.now(UTC))  # deletes the unfinished build's rows
        table.housekeep(datetime.now(UTC))  # a grace period of 0 has run out: their files go
        assert files_holding(warehouse, gone) == [] and files_holding(warehouse, stays) == []
        assert table.read("r1").num_rows == 24  # a built release keeps every row
        _build(table, "r-cut", {"s-stays": stays})
        assert table.read("r-cut").num_rows == 24


def test_an_erasure_killed_between_its_delete_and_moving_the_tags_is_finished_by_the_next_writer(
    kind: str, tmp_path: Path
) -> None:
    """An erasure commits its delete, then moves every release tag to it and registers it for expiry: three
    steps. Killed after the first, the tags still name a snapshot with the rows, and nothing would expire
    them. The next writer (here the housekeeping) finishes both."""
    from pyiceberg.expressions import And, EqualTo

    gone, kept = "rcpt-gone-" + secrets.token_hex(6), "rcpt-kept-" + secrets.token_hex(6)
    with open_release_table(kind, tmp_path, grace=timedelta(0)) as table:
        _build(table, "r1", {"s-gone": gone, "s-kept": kept})
        alias = table.aliases("r1").subject("s-gone")
        # The table as an erasure killed right after its first commit leaves it, made with pyiceberg itself.
        where = And(EqualTo("release_id", "r1"), EqualTo("subject", alias))
        table._table.delete(where, snapshot_properties={"consentry.commit": "cut", "consentry.erasure": "1"})
        assert alias in table.read("r1")["subject"].to_pylist()  # the tag still names the old snapshot
        table.housekeep(datetime.now(UTC))
        assert alias not in table.read("r1")["subject"].to_pylist()
        assert files_holding(Path(table.location), gone) == [] and files_holding(Path(table.location), kept)


class _DatabaseBackup:
    """The store's database (which holds the release catalog) copied and put back as an operator would:
    SQLite's backup API for ``dir``, ``pg_dump`` / ``pg_restore`` of the store's schema for ``postgres``."""

    def __init__(self, kind: str, data_dir: Path, folder: Path) -> None:
        from store.backends.dir import CATALOG

        if kind == "postgres":
            require(postgres_available(), "PostgreSQL", f"run: bash scripts/start-postgres.sh and set {PG_DSN_ENV}")
        self.kind, self.folder = kind, folder
        self.schema = "t_" + secrets.token_hex(6)
        self.catalog = data_dir / "data" / CATALOG
        self.dump = folder / "store.dump"

    def open_backend(self) -> Any:
        from store.backends.dir import DirBackend
        from store.backends.postgres import PostgresBackend

        if self.kind == "dir":
            return DirBackend(self.catalog.parent)
        return PostgresBackend(pg_dsn(), schema=self.schema)

    def table_args(self) -> dict[str, Any]:
        return {} if self.kind == "dir" else {"backend": "postgres", "dsn": pg_dsn(), "schema": self.schema}

    def take(self) -> None:
        import sqlite3

        if self.kind == "dir":
            with sqlite3.connect(self.catalog) as live, sqlite3.connect(self.folder / self.catalog.name) as copy:
                live.backup(copy)
        else:
            subprocess.run(["pg_dump", "-Fc", "-n", self.schema, "-f", str(self.dump), pg_dsn()], check=True)

    def put_back(self) -> None:
        if self.kind == "dir":
            for leftover in self.catalog.parent.glob(self.catalog.name + "*"):
                leftover.unlink()
            shutil.copyfile(self.folder / self.catalog.name, self.catalog)
        else:
            self.drop()
            subprocess.run(["pg_restore", "-d", pg_dsn(), str(self.dump)], check=True)

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(pg_dsn(), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def test_a_release_table_put_back_from_before_an_erasure_is_not_opened(kind: str, tmp_path: Path) -> None:
    """The operator puts back the store's database (which holds the release catalog) and the warehouse from a
    backup taken before an erasure. The erased person's rows are in that copy again. The table must not open:
    no build, read, card or housekeeping may serve them, and the words must say why and what to do."""
    from store.keys import StoreKeys
    from store.record_keys import RecordKeyring
    from store.records_kek import DatabaseOlderThanKeys

    erased, kept = "rcpt-erased-3d1a90c4", "rcpt-kept-6be20f17"
    data_dir = tmp_path / "store"
    warehouse = data_dir / "data" / "releases"
    backup = tmp_path / "backup"
    backup.mkdir()
    database = _DatabaseBackup(kind, data_dir, backup)
    try:
        backend = database.open_backend()
        keyring = RecordKeyring(StoreKeys.load_or_create(data_dir / "keys")[0].records)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        try:
            with backend.transaction() as tx:
                for subject in ("s-erased", "s-kept"):
                    keyring.subject_key(tx, subject, create=True, now=int(now.timestamp()))
            table = ReleaseTable.open(None, data_dir=data_dir, grace=timedelta(0), **database.table_args())
            _build(table, "r1", {"s-erased": erased, "s-kept": kept})
            database.take()
            shutil.copytree(warehouse, backup / "releases")

            with table.erasing("s-erased", now=now), backend.transaction() as tx:  # as the store erases
                keyring.shred(tx, "s-erased")
            keyring.rotate_if_due(backend)
            table.expire(now)
            assert not files_holding(warehouse, erased)
            table.close()
        finally:
            backend.close()

        database.put_back()
        shutil.rmtree(warehouse)
        shutil.copytree(backup / "releases", warehouse)
        assert files_holding(warehouse, erased)  # the backup holds them, as backups do

        with pytest.raises(DatabaseOlderThanKeys) as refused:
            ReleaseTable.open(None, data_dir=data_dir, **database.table_args()).close()
        said = " ".join(str(refused.value).split())
        assert "older than the last erasure" in said and "Do not put back an older key folder" in said, said
        where = [] if kind == "dir" else ["--backend", "postgres", "--schema", database.schema]
        done = subprocess.run(  # the operator's commands say so in words, and stop
            [sys.executable, "-m", "agent", "dataset", "rows", "r1", "--data", str(data_dir), *where],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "CONSENTRY_STORE_DSN": pg_dsn()},
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "older than the last erasure" in " ".join(done.stderr.split()), done.stderr
        assert files_holding(warehouse, erased)  # nothing was changed either
    finally:
        database.drop()
