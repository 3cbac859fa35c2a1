"""The release table in an S3-compatible bucket: a real S3 server on 127.0.0.1 (moto's, with credential
checks on; devkit/s3_server.py), both catalogs. Build and read back, erasure reaching every object in the
bucket, housekeeping, and bad settings refused with nothing changed and no secret shown."""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.components import require
from devkit.s3_server import S3Server, s3_server, s3_server_available
from devkit.table_files import files_holding
from protocol.errors import InsecurePermissions
from store.backends.dir import CATALOG
from store.releases import ObjectStore, ReleaseTable, SnapshotExpired, WarehouseConfig, WarehouseError, release_rows
from store.releases.consumers import ReleasePolicyError, load_release_policy
from store.releases.warehouse import S3Credentials
from tests.store.release_kit import open_release_table, records

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    require(s3_server_available(), "moto's S3 server", "pip install 'moto[server]' (in the test extra)")
    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = "releases-" + secrets.token_hex(6)
    s3.create_bucket(name)
    return name


@pytest.fixture(params=["dir", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _store(s3: S3Server, url: str, *, secret: str | None = None, endpoint: str | None = None) -> ObjectStore:
    config = WarehouseConfig(url=url, endpoint=endpoint or s3.endpoint, region=s3.region)
    return ObjectStore(config, S3Credentials(s3.access_key_id, secret or s3.secret_access_key))


def _build(table: ReleaseTable, release_id: str, subjects: dict[str, str], **kwargs: object) -> None:
    recs = [r for subject, receipt in subjects.items() for r in records(subject, receipt)]
    table.build(release_id, release_rows(recs, release_id, table.aliases(release_id)), **kwargs)  # type: ignore[arg-type]


def _catalog_bytes(tmp: Path) -> bytes:
    folder = tmp / "store" / "data"
    return b"".join(p.read_bytes() for p in folder.glob(CATALOG + "*"))


def _objects_holding(s3: S3Server, bucket: str, needle: str, folder: Path) -> list[Path]:
    """Every object of the bucket read whole (Parquet decoded, Avro inflated), those that hold ``needle``."""
    folder.mkdir(parents=True, exist_ok=False)
    s3.download(bucket, folder)
    return files_holding(folder, needle)


def test_release_builds_into_the_bucket_and_reads_back(kind: str, s3: S3Server, bucket: str, tmp_path: Path) -> None:
    warehouse = _store(s3, f"s3://{bucket}/prod")
    with open_release_table(kind, tmp_path, warehouse=warehouse) as table:
        _build(table, "r1", {"s-a": "rcpt-a", "s-b": "rcpt-b"})
        rows = table.read("r1")
        assert rows.num_rows == 2 * 2 * 3 * 4 and set(rows["receipt_id"].to_pylist()) == {"rcpt-a", "rcpt-b"}
        files = table.data_files("r1")
        assert len(files) == 8 and all(f.startswith(f"s3://{bucket}/prod/") for f in files)
        assert table.location.startswith(f"s3://{bucket}/prod/") and not table.is_local
    keys = s3.objects(bucket)
    assert keys and all(k.startswith("prod/") for k in keys)
    assert {k.rsplit(".", 1)[-1] for k in keys} >= {"parquet", "avro", "json"}
    assert not any(".consentry-probe-" in k for k in keys)  # the open's write check leaves nothing
    assert not (tmp_path / "store" / "data" / "releases").exists()  # nothing in the local warehouse
    # The secret is in no object and (dir) not in the catalog database (file, WAL).
    assert not any(s3.secret_access_key.encode() in body for body in keys.values())
    if kind == "dir":
        assert s3.secret_access_key.encode() not in _catalog_bytes(tmp_path)


def test_readers_read_the_snapshot_objects_through_the_endpoint(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """pyarrow's S3 filesystem, polars (its own object-store client) and DuckDB read the release's objects offline."""
    import polars as pl
    import pyarrow.parquet as pq

    warehouse = _store(s3, f"s3://{bucket}/readers")
    with open_release_table("dir", tmp_path, warehouse=warehouse) as table:
        _build(table, "r1", {"s-a": "rcpt-a", "s-b": "rcpt-b"})
        _build(table, "r2", {"s-c": "rcpt-c"})  # another release in the same table
        files = table.data_files("r1")
    filesystem = warehouse.filesystem()
    via_pyarrow = pq.read_table([f.removeprefix("s3://") for f in files], filesystem=filesystem, partitioning=None)
    assert via_pyarrow.num_rows == 48 and set(via_pyarrow["release_id"].to_pylist()) == {"r1"}
    options = {
        "aws_endpoint_url": s3.endpoint,
        "aws_access_key_id": s3.access_key_id,
        "aws_secret_access_key": s3.secret_access_key,
        "aws_region": s3.region,
        "aws_allow_http": "true",
    }
    frame = pl.read_parquet(files, storage_options=options, hive_partitioning=False)
    assert frame.height == 48 and frame["subject"].n_unique() == 2
    # DuckDB's own S3 reader (httpfs) is a download at run time: it scans the objects as a pyarrow dataset.
    import duckdb
    import pyarrow.dataset as pads

    objects = pads.dataset(
        [f.removeprefix("s3://") for f in files], filesystem=filesystem, format="parquet", partitioning=None
    )
    con = duckdb.connect()
    con.register("release", objects)
    counted = con.execute("SELECT count(*), count(DISTINCT subject), count(DISTINCT category) FROM release").fetchone()
    assert counted == (48, 2, 4)


def test_erasure_removes_the_subject_from_every_object_in_the_bucket(
    kind: str, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    erased, kept = "rcpt-erased-" + secrets.token_hex(6), "rcpt-kept-" + secrets.token_hex(6)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with open_release_table(kind, tmp_path, grace=timedelta(hours=72), warehouse=_store(s3, f"s3://{bucket}")) as table:
        _build(table, "r1", {"s-erased": erased, "s-kept": kept})
        snapshot_before = table.snapshot_id("r1")
        assert _objects_holding(s3, bucket, erased, tmp_path / "before")
        assert _objects_holding(s3, bucket, kept, tmp_path / "before-kept")

        result = table.erase_subject("s-erased", now=start)
        assert result.releases == ("r1",) and result.rows_deleted == 24
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {kept}
        # within the grace period the old snapshot's objects stay
        assert table.expire(start + timedelta(hours=71)).files_removed == 0
        assert _objects_holding(s3, bucket, erased, tmp_path / "within")

        # the housekeeping (what `store serve` runs every 15 minutes) removes them from the bucket
        _, expiry = table.housekeep(start + timedelta(hours=72))
        assert expiry.snapshots_expired >= 1 and expiry.files_removed > 0 and expiry.bytes_removed > 0
        assert _objects_holding(s3, bucket, erased, tmp_path / "after") == []
        assert _objects_holding(s3, bucket, kept, tmp_path / "after-kept")  # the control subject's rows stay
        with pytest.raises(SnapshotExpired, match="snapshot expired by erasure"):
            table.read_snapshot(snapshot_before, "r1")
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {kept}


def test_retention_housekeeping_removes_old_rows_from_the_bucket(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    old = "rcpt-old-" + secrets.token_hex(6)
    warehouse = _store(s3, f"s3://{bucket}/ret")
    with open_release_table("dir", tmp_path, grace=timedelta(0), warehouse=warehouse) as table:
        _build(table, "r1", {"s-old": old}, retention_days=30)  # windows of 2025: long past 30 days
        retention, expiry = table.housekeep(datetime.now(UTC))
        assert retention.rows_deleted == 24 and expiry.files_removed > 0
    assert _objects_holding(s3, bucket, old, tmp_path / "after") == []


def test_a_missing_bucket_is_refused_and_changes_nothing(kind: str, s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="bucket 'no-such-bucket-7f3a' does not exist.*nothing was changed"):
        with open_release_table(kind, tmp_path, warehouse=_store(s3, "s3://no-such-bucket-7f3a/x")):
            pass
    assert not (tmp_path / "store" / "data" / "releases").exists()
    if kind == "dir":
        with sqlite3.connect(tmp_path / "store" / "data" / CATALOG) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not tables & {"iceberg_tables", "release_snapshots", "release_erasures"}


def test_bad_credentials_and_an_unreachable_endpoint_are_refused_without_the_secret(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    wrong = "wrong-secret-" + secrets.token_hex(12)
    with pytest.raises(WarehouseError, match="refused the credentials") as refused:
        with open_release_table("dir", tmp_path / "a", warehouse=_store(s3, f"s3://{bucket}", secret=wrong)):
            pass
    assert wrong not in str(refused.value) and s3.secret_access_key not in str(refused.value)
    with pytest.raises(WarehouseError, match="cannot reach the S3 endpoint http://127.0.0.1:9: .*nothing was changed"):
        with open_release_table(
            "dir", tmp_path / "b", warehouse=_store(s3, f"s3://{bucket}", endpoint="http://127.0.0.1:9")
        ):
            pass
    assert s3.objects(bucket) == {}  # nothing was written


def test_a_table_stays_in_the_warehouse_it_was_created_in(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    from store.backends.dir import DirBackend

    data = tmp_path / "store"
    DirBackend(data / "data").close()
    ReleaseTable.open(None, data_dir=data, warehouse=_store(s3, f"s3://{bucket}/one")).close()
    with pytest.raises(WarehouseError, match=f"lives in s3://{bucket}/one/.*the local folder"):
        ReleaseTable.open(None, data_dir=data)
    with pytest.raises(WarehouseError, match=f"lives in s3://{bucket}/one/.*names s3://{bucket}/two"):
        ReleaseTable.open(None, data_dir=data, warehouse=_store(s3, f"s3://{bucket}/two"))
    assert not (data / "data" / "releases").exists()
    local = tmp_path / "local"
    DirBackend(local / "data").close()
    ReleaseTable.open(None, data_dir=local).close()  # a table in the local folder ...
    with pytest.raises(WarehouseError, match=f"lives in {local}/data/releases/.*names s3://{bucket}/three"):
        ReleaseTable.open(None, data_dir=local, warehouse=_store(s3, f"s3://{bucket}/three"))  # ... stays there
    assert not any(k.startswith(("two/", "three/")) for k in s3.objects(bucket)), list(s3.objects(bucket))


def test_bad_warehouse_settings_are_refused_with_the_key_named(tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.toml"
    cases = {
        'url = "gs://bucket/x"': "scheme 'gs' is not supported",
        'url = "/srv/releases"': "scheme '(none)' is not supported",
        'url = "s3:///prefix"': "the bucket is missing",
        'url = "s3://Bad_Bucket"': "is not an S3 bucket name",
        'url = "s3://bucket"\nendpoint = "http://minio.example.org:9000"': "plain HTTP to another machine",
        'url = "s3://bucket"\nendpoint = "ftp://host"': "is not an endpoint URL",
        'url = "s3://bucket"\nsecret = "x"': "warehouse.secret",
    }
    for body, message in cases.items():
        policy.write_text(f"[warehouse]\n{body}\n")
        with pytest.raises(ReleasePolicyError, match=re.escape(message)) as refused:
            load_release_policy(policy)
        assert "warehouse" in str(refused.value)
    policy.write_text('[warehouse]\nurl = "s3://bucket/a/b/"\nendpoint = "http://127.0.0.1:9000"\n')
    good = load_release_policy(policy).warehouse
    assert good is not None and (good.bucket, good.prefix, good.url) == ("bucket", "a/b", "s3://bucket/a/b")


def test_credentials_come_from_the_environment_or_a_private_file(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    config = WarehouseConfig(url=f"s3://{bucket}", endpoint=s3.endpoint)
    with pytest.raises(WarehouseError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        ObjectStore.from_config(config, environ={})
    env = {"AWS_ACCESS_KEY_ID": s3.access_key_id, "AWS_SECRET_ACCESS_KEY": s3.secret_access_key}
    ObjectStore.from_config(config, environ=env).check()

    creds = tmp_path / "s3.ini"
    creds.write_text(
        f"[default]\naws_access_key_id = {s3.access_key_id}\naws_secret_access_key = {s3.secret_access_key}\n"
    )
    from_file = WarehouseConfig(url=f"s3://{bucket}", endpoint=s3.endpoint, credentials_file=creds)
    for mode in (0o644, 0o640, 0o604):
        os.chmod(creds, mode)
        with pytest.raises(InsecurePermissions, match=f"chmod 600 '{creds}'"):
            ObjectStore.from_config(from_file, environ=env)
    os.chmod(creds, 0o600)
    store = ObjectStore.from_config(from_file, environ={})
    store.check()
    assert s3.secret_access_key not in repr(store) and s3.secret_access_key not in repr(store.__dict__)
    creds.write_text(f"aws_secret_access_key = {s3.secret_access_key}\n")
    with pytest.raises(WarehouseError, match="is not an AWS credentials file") as damaged:
        ObjectStore.from_config(from_file, environ={})
    assert s3.secret_access_key not in str(damaged.value)


def _consentry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )


def test_dataset_commands_use_the_policy_warehouse_with_credentials_from_the_environment(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Real `consentry dataset rows/housekeep` processes: the bucket from release-policy.toml, the key from the
    environment; a wrong secret is refused in words, with no traceback and the secret nowhere in the output."""
    data = tmp_path / "store"
    gone, kept = "rcpt-gone-" + secrets.token_hex(6), "rcpt-kept-" + secrets.token_hex(6)
    with open_release_table("dir", tmp_path, grace=timedelta(0), warehouse=_store(s3, f"s3://{bucket}/cli")) as table:
        _build(table, "r1", {"s-gone": gone, "s-kept": kept})
        table.erase_subject("s-gone")
    (data / "release-policy.toml").write_text(
        f'erasure_grace_hours = 0\n\n[warehouse]\nurl = "s3://{bucket}/cli"\nendpoint = "{s3.endpoint}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID=s3.access_key_id, AWS_SECRET_ACCESS_KEY=s3.secret_access_key)
    rows = _consentry(env, "dataset", "rows", "r1", "--data", str(data))
    assert rows.returncode == 0, rows.stderr
    assert "holds 24 rows of 1 subject now" in rows.stdout
    assert _objects_holding(s3, bucket, gone, tmp_path / "before")  # the grace has run out, but nobody expired yet
    housekeep = _consentry(env, "dataset", "housekeep", "--data", str(data))
    assert housekeep.returncode == 0, housekeep.stderr
    assert "expired and" in housekeep.stdout
    assert _objects_holding(s3, bucket, gone, tmp_path / "after") == []
    assert _objects_holding(s3, bucket, kept, tmp_path / "after-kept")

    wrong = "wrong-" + secrets.token_hex(16)
    refused = _consentry({**env, "AWS_SECRET_ACCESS_KEY": wrong}, "dataset", "rows", "r1", "--data", str(data))
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "refused the credentials from the environment" in output
    assert "Traceback" not in output and wrong not in output and s3.secret_access_key not in output
    missing = _consentry(
        {k: v for k, v in env.items() if not k.startswith("AWS_")}, "dataset", "rows", "r1", "--data", str(data)
    )
    assert missing.returncode == 1 and "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in missing.stderr


def test_a_versioned_or_public_bucket_is_refused(s3: S3Server, tmp_path: Path) -> None:
    """A versioned bucket would keep erased rows in old versions; a public one is not a private warehouse."""
    client = s3.client()
    versioned, public = "versioned-" + secrets.token_hex(4), "public-" + secrets.token_hex(4)
    s3.create_bucket(versioned)
    client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(WarehouseError, match=r"keeps old versions of objects \(versioning Enabled\)"):
        with open_release_table("dir", tmp_path / "a", warehouse=_store(s3, f"s3://{versioned}")):
            pass
    client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Suspended"})
    with pytest.raises(WarehouseError, match=r"versioning Suspended"):
        with open_release_table("dir", tmp_path / "b", warehouse=_store(s3, f"s3://{versioned}")):
            pass
    s3.create_bucket(public)
    client.put_bucket_acl(Bucket=public, ACL="public-read")
    with pytest.raises(WarehouseError, match="grants access to AllUsers.*Make the bucket private"):
        with open_release_table("dir", tmp_path / "c", warehouse=_store(s3, f"s3://{public}")):
            pass
    assert s3.objects(versioned) == {} and s3.objects(public) == {}


def test_store_serve_erases_into_the_bucket_by_itself(
    kind: str, s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `consentry store serve` reads [warehouse] from release-policy.toml and its key from the
    environment, and its housekeeping removes rows past retention from every object in the bucket."""
    from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy

    old, fresh = "rcpt-old-" + secrets.token_hex(6), "rcpt-fresh-" + secrets.token_hex(6)
    today = int(datetime.now(UTC).timestamp()) - 86_400
    warehouse = _store(s3, f"s3://{bucket}/serve")
    schema = "t_" + secrets.token_hex(6) if kind == "postgres" else "consentry"
    with open_release_table(kind, tmp_path, warehouse=warehouse, schema=schema) as table:
        recs = records("s-old", old, days=1) + records("s-new", fresh, days=1, first=today)
        table.build("r1", release_rows(recs, "r1", table.aliases("r1")), retention_days=30)
        assert _objects_holding(s3, bucket, old, tmp_path / "before")
        data = tmp_path / "store"
        (data / "release-policy.toml").write_text(
            f'erasure_grace_hours = 0\n\n[warehouse]\nurl = "s3://{bucket}/serve"\nendpoint = "{s3.endpoint}"\n'
        )
        policy = write_policy(tmp_path / "policy.toml", Stewards.make())
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
        server = StoreProcess(data, policy, backend=kind, port=free_port(), schema=schema).start()
        try:
            deadline = time.monotonic() + 120
            while (
                _objects_holding(s3, bucket, old, tmp_path / f"poll-{time.monotonic()}") and time.monotonic() < deadline
            ):
                time.sleep(1)
        finally:
            server.stop()
        assert _objects_holding(s3, bucket, old, tmp_path / "after") == []
        assert _objects_holding(s3, bucket, fresh, tmp_path / "after-fresh")
        assert s3.secret_access_key not in server.log.read_text()
        assert set(table.read("r1")["receipt_id"].to_pylist()) == {fresh}

        # The same store started with a wrong secret does not start, and says why.
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + secrets.token_hex(8))
        with pytest.raises(RuntimeError, match="refused the credentials from the environment") as refused:
            StoreProcess(data, policy, backend=kind, port=free_port(), schema=schema).start()
        assert "Traceback" not in str(refused.value)
