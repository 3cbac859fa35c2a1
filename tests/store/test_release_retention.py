"""Retention reaches the release table, and housekeeping (retention and the grace-period expiry) runs by itself."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from admin.dataset_cmd import dataset
from devkit import store_kit
from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy
from devkit.table_files import files_holding
from store.releases import ReleaseTable, SnapshotExpired, release_rows
from store.releases.consumers import ReleasePolicyError, load_release_policy
from store.releases.housekeeping import ReleaseHousekeeper
from tests.store.release_kit import DAY, T0, open_release_table, records

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["dir", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _build(table: ReleaseTable, release_id: str, recs: list, retention_days: int | None = 30) -> None:
    table.build(release_id, release_rows(recs, release_id, table.aliases(release_id)), retention_days=retention_days)


def test_rows_past_retention_leave_the_table_and_every_file_after_the_grace_period(kind: str, tmp_path: Path) -> None:
    old, fresh = "rcpt-old-" + secrets.token_hex(6), "rcpt-fresh-" + secrets.token_hex(6)
    now = datetime.fromtimestamp(T0 + 35 * DAY, UTC)  # the old rows' windows ended 35 days ago, the fresh 15
    with open_release_table(kind, tmp_path, grace=timedelta(hours=72)) as table:
        recs = records("s-old", old, days=1) + records("s-fresh", fresh, days=1, first=T0 + 20 * DAY)
        _build(table, "r1", recs, retention_days=30)
        pinned = table.snapshot_id("r1")
        warehouse = Path(table.location)
        assert files_holding(warehouse, old) and files_holding(warehouse, fresh)

        result = table.expire_retention(now)
        assert result.releases == ("r1",) and result.rows_deleted == 12
        # current data at once: the release reads without the rows past retention
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {fresh}
        assert table.expire_retention(now).rows_deleted == 0  # a second run finds nothing more
        # within the grace period the pinned snapshot still reads, and its files still exist
        assert table.expire(now + timedelta(hours=71)).files_removed == 0
        assert files_holding(warehouse, old)
        assert table.read_snapshot(pinned, "r1").num_rows == 24

        expiry = table.expire(now + timedelta(hours=72))
        assert expiry.snapshots_expired >= 1 and expiry.files_removed > 0
        assert files_holding(warehouse, old) == []  # no data, delete or metadata file holds them
        assert files_holding(warehouse, fresh)  # the control: the fresher rows are still there
        with pytest.raises(SnapshotExpired, match="snapshot expired by erasure or retention"):
            table.read_snapshot(pinned, "r1")
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {fresh}


def test_each_release_keeps_the_retention_it_was_built_under(tmp_path: Path) -> None:
    now = datetime.fromtimestamp(T0 + 35 * DAY, UTC)
    with open_release_table("dir", tmp_path) as table:
        _build(table, "short", records("s-a", "rcpt-short", days=1), retention_days=30)
        _build(table, "long", records("s-a", "rcpt-long", days=1), retention_days=60)
        _build(table, "none", records("s-a", "rcpt-none", days=1), retention_days=None)
        assert (table.retention_days("short"), table.retention_days("long"), table.retention_days("none")) == (
            30,
            60,
            None,
        )
        result = table.expire_retention(now)
        assert result.releases == ("short",)
        assert table.read("short").num_rows == 0
        assert table.read("long").num_rows == table.read("none").num_rows == 12


def test_expiry_removes_erased_rows_even_when_a_later_release_was_built_before_the_erasure(
    kind: str, tmp_path: Path
) -> None:
    """A tag is a whole-table snapshot: a later release's tag must not keep the erased rows' files alive."""
    erased, kept, other = (f"rcpt-{w}-" + secrets.token_hex(6) for w in ("erased", "kept", "other"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with open_release_table(kind, tmp_path, grace=timedelta(0)) as table:
        _build(table, "r1", records("s-erased", erased) + records("s-kept", kept), retention_days=None)
        _build(table, "r2", records("s-other", other), retention_days=None)  # after r1, without the subject
        pinned_r2 = table.snapshot_id("r2")
        table.erase_subject("s-erased", now=now)
        table.expire(now)
        warehouse = Path(table.location)
        assert files_holding(warehouse, erased) == []
        assert files_holding(warehouse, kept) and files_holding(warehouse, other)
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {kept}
        assert set(table.read("r2")["receipt_id"].to_pylist()) == {other}
        with pytest.raises(SnapshotExpired, match="snapshot expired by erasure or retention"):
            table.read_snapshot(pinned_r2, "r2")


def test_bad_retention_or_grace_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with open_release_table("dir", tmp_path) as table:
        for bad in (0, -3, 3651, True):
            with pytest.raises(ValueError, match="retention_days must be a whole number of days"):
                _build(table, "r1", records("s-a", "rcpt-a"), retention_days=bad)  # type: ignore[arg-type]
        assert table.releases() == []
        with pytest.raises(ValueError, match="cannot be negative"):
            ReleaseTable.open(None, data_dir=tmp_path / "store", grace=timedelta(hours=-1))
    with pytest.raises(ValueError, match="positive"):
        ReleaseHousekeeper(object(), every=timedelta(0))
    policy = tmp_path / "release-policy.toml"
    for line, key in (("retention_days = -1", "retention_days"), ("erasure_grace_hours = -2", "erasure_grace_hours")):
        policy.write_text(line + "\n")
        with pytest.raises(ReleasePolicyError, match=key):
            load_release_policy(policy)


def test_dataset_housekeep_refuses_a_bad_policy_and_runs_with_a_good_one(tmp_path: Path) -> None:
    data = tmp_path / "store"
    gone = "rcpt-gone-" + secrets.token_hex(6)
    with open_release_table("dir", tmp_path) as table:
        _build(table, "r1", records("s-a", gone, days=1), retention_days=30)  # T0: years ago
        warehouse = Path(table.location)
    (data / "release-policy.toml").write_text("erasure_grace_hours = -1\n")
    refused = CliRunner().invoke(dataset, ["housekeep", "--data", str(data)])
    assert refused.exit_code == 1 and "erasure_grace_hours" in refused.output
    assert files_holding(warehouse, gone)  # nothing changed
    (data / "release-policy.toml").write_text("erasure_grace_hours = 0\n")
    ran = CliRunner().invoke(dataset, ["housekeep", "--data", str(data)])
    assert ran.exit_code == 0, ran.output
    assert "12 rows past retention left 1 release" in ran.output
    assert files_holding(warehouse, gone) == []


def test_store_serve_runs_the_housekeeping_by_itself(kind: str, tmp_path: Path) -> None:
    """No person runs anything: `consentry store serve` drops rows past retention and removes their files."""
    old, fresh = "rcpt-old-" + secrets.token_hex(6), "rcpt-fresh-" + secrets.token_hex(6)
    today = int(time.time()) - DAY
    schema = "t_" + secrets.token_hex(6)
    data = tmp_path / "store"
    pg = None
    if kind == "postgres":
        from store.backends.postgres import PostgresBackend

        store_kit.require(store_kit.postgres_available(), "PostgreSQL", "run: bash scripts/start-postgres.sh")
        pg = PostgresBackend(store_kit.pg_dsn(), schema=schema)
        table = ReleaseTable.open(None, data_dir=data, backend="postgres", dsn=store_kit.pg_dsn(), schema=schema)
    else:
        from store.backends.dir import DirBackend

        DirBackend(data / "data").close()
        table = ReleaseTable.open(None, data_dir=data)
    try:
        _build(table, "r1", records("s-old", old, days=1) + records("s-new", fresh, days=1, first=today))
        warehouse = Path(table.location)
        assert files_holding(warehouse, old) and files_holding(warehouse, fresh)
        (data / "release-policy.toml").write_text("erasure_grace_hours = 0\n")
        policy = write_policy(tmp_path / "policy.toml", Stewards.make())
        server = StoreProcess(data, policy, backend=kind, port=free_port(), schema=schema).start()
        try:
            deadline = time.monotonic() + 120
            while files_holding(warehouse, old) and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            server.stop()
        assert files_holding(warehouse, old) == []
        assert files_holding(warehouse, fresh)
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {fresh}
    finally:
        table.close()
        if pg is not None:
            pg.drop_schema()
            pg.close()
