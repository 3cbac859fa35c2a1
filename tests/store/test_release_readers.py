"""A release snapshot is read by the tools an ML team uses: pyiceberg, DuckDB, polars, pandas, datasets, Ray Data.

Each reader gets the same release and must see exactly its rows; nothing is downloaded at run time (the
DuckDB iceberg extension is not on PyPI, so DuckDB reads the snapshot's Parquet data files directly).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.ray_cluster import WAIT_FOR_TWO_NODES, local_cluster
from store.releases import ReleaseTable, release_rows
from tests.store.release_kit import open_release_table, records

RELEASE = "r-readers"


@pytest.fixture
def table(tmp_path: Path) -> Iterator[ReleaseTable]:
    with open_release_table("dir", tmp_path) as t:
        recs = records("s-a", "rcpt-a", days=3) + records("s-b", "rcpt-b", days=3)
        t.build(RELEASE, release_rows(recs, RELEASE, t.aliases(RELEASE)))
        # a second release in the same table: no reader of the first may see its rows
        t.build("r-other", release_rows(records("s-c", "rcpt-c"), "r-other", t.aliases("r-other")))
        yield t


EXPECTED_ROWS = 2 * 3 * 3 * 4  # subjects x days x windows per day x categories


def test_pyiceberg_reads_the_release_by_its_tag(table: ReleaseTable) -> None:
    rows = table.read(RELEASE)
    assert rows.num_rows == EXPECTED_ROWS and set(rows["release_id"].to_pylist()) == {RELEASE}


def test_duckdb_reads_the_snapshot_data_files(table: ReleaseTable) -> None:
    import duckdb

    files = table.data_files(RELEASE)
    con = duckdb.connect()
    count, subjects, categories = con.execute(
        "SELECT count(*), count(DISTINCT subject), count(DISTINCT category) "
        "FROM read_parquet($files, hive_partitioning = false) WHERE release_id = $r",
        {"files": files, "r": RELEASE},
    ).fetchone()  # type: ignore[misc]
    assert (count, subjects, categories) == (EXPECTED_ROWS, 2, 4)
    total = con.execute("SELECT count(*) FROM read_parquet($files, hive_partitioning = false)", {"files": files})
    assert total.fetchone() == (EXPECTED_ROWS,)  # the files hold this release's rows only


def test_polars_and_pandas_read_the_snapshot_data_files(table: ReleaseTable) -> None:
    import pandas as pd
    import polars as pl

    files = table.data_files(RELEASE)
    frame = pl.read_parquet(files, hive_partitioning=False)
    assert frame.height == EXPECTED_ROWS
    assert frame.schema["start"] == pl.Datetime("us", "UTC")
    mouse = pd.concat(pd.read_parquet(f) for f in files)
    assert len(mouse) == EXPECTED_ROWS and (mouse["category"] == "mouse").sum() == EXPECTED_ROWS // 4


def test_hugging_face_datasets_loads_the_snapshot_files(table: ReleaseTable, tmp_path: Path) -> None:
    from datasets import load_dataset

    files = table.data_files(RELEASE)
    dataset = load_dataset("parquet", data_files={"train": files}, cache_dir=str(tmp_path / "hf"), split="train")
    assert dataset.num_rows == EXPECTED_ROWS
    assert set(dataset.unique("category")) == {"keyboard", "mouse", "apps", "files"}


@pytest.mark.ray
def test_ray_data_on_a_local_two_process_cluster_reads_the_release(table: ReleaseTable) -> None:
    """`ray start --head` plus a worker node process (devkit/ray_cluster.py); a driver reads the snapshot."""
    import json

    driver = (
        "import json, sys, time\nimport ray\n"
        'ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)\n'
        + WAIT_FOR_TWO_NODES
        + textwrap.dedent(
            """
            release = sys.argv[3]  # bound here: the filter runs in the worker processes, with their own argv
            ds = ray.data.read_parquet(json.loads(sys.argv[2]), partitioning=None)
            rows = ds.filter(lambda r: r["release_id"] == release).count()
            nodes = len([n for n in ray.nodes() if n["Alive"]])
            print("RESULT " + json.dumps({"rows": rows, "nodes": nodes}), flush=True)
            """
        )
    )
    with local_cluster(object_store_bytes=80_000_000) as (address, env):
        done = subprocess.run(
            [sys.executable, "-c", driver, address, json.dumps(table.data_files(RELEASE)), RELEASE],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, done.stdout[-3000:]
    assert json.loads(result[-1].removeprefix("RESULT ")) == {"rows": EXPECTED_ROWS, "nodes": 2}
