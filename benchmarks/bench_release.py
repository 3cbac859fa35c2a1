"""Release table benchmarks, against a baseline measured in the same run; prints ratios and targets.

1  build    rows of N records (4 categories, 500 subjects, 30 days) written as one release of the
            Iceberg release table (partitioned, tagged, catalog committed) vs the same rows written
            to one zstd Parquet file with pyarrow directly; alternated, median of --rounds  (target >= 0.5x)
            Also printed: release_rows (records -> Arrow) records/s, the step before it.
2  erasure  one subject's rows deleted from the table: time, bytes rewritten and partitions touched
            against the table's size, for a subject in every partition and for one in a single
            partition                                       (target: proportional to the partitions
                                                             holding the subject, not to the table)

Not measured here: reading and decrypting the stored records (the store's part of a build).

python benchmarks/bench_release.py [--records 1000000] [--rounds 3] [--backend dir|postgres|both]
PostgreSQL: CONSENTRY_TEST_PG_DSN (export it from scripts/start-postgres.sh); a schema is made and dropped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from store.releases import OpenedRecord, ReleaseAliases, ReleaseTable, release_rows  # noqa: E402

T0 = 1_760_000_000
DAY = 86_400
CATEGORIES = ("keyboard", "mouse", "apps", "files")


def _body(category: str, start: int, i: int) -> dict[str, Any]:
    base: dict[str, Any] = {"receipt_id": f"rcpt-{i % 97}", "start": start, "end": start + 60}
    if category == "keyboard":
        base.update(
            key_counts={"letter": 40 + i % 50, "space": 9, "editing": i % 7},
            iki_histogram=[0, 3, 9, 7, 5, 3, 2, 1, i % 3],
            bursts=3,
            longest_burst=12 + i % 9,
            pauses=2,
            correction_ratio=(i % 7) / 60,
            sparse=False,
        )
    elif category == "mouse":
        base.update(
            clicks={"left": i % 9, "right": i % 2},
            scroll_steps=i % 30,
            moves=100 + i % 400,
            distance_px=1000.0 + i % 5000,
            idle_seconds=float(i % 60),
        )
    elif category == "apps":
        base.update(
            focus=[{"app": "cat:ide", "seconds": 40.0}, {"app": "cat:browser", "seconds": 20.0}], switches=i % 6
        )
    else:
        base.update(
            events=[{"root_class": "projects", "depth": 2, "ext": "py", "kind": "modified", "count": 1 + i % 4}]
        )
    return base


def records(n: int, subjects: int, days: int) -> Iterator[OpenedRecord]:
    """N records spread evenly over days, categories and subjects (every subject in every partition)."""
    per_day = max(1, n // days)
    for i in range(n):
        day = min(i // per_day, days - 1)
        category = CATEGORIES[i % 4]
        subject = f"{(i // 4) % subjects:064x}"
        yield OpenedRecord(
            f"batch-{subject[-8:]}-{day}", subject, category, _body(category, T0 + day * DAY + (i % 1440) * 60, i)
        )
    # one subject in a single partition (mouse, day 0): an erasure should touch that partition only
    for i in range(20):
        yield OpenedRecord("batch-narrow", "f" * 64, "mouse", _body("mouse", T0 + i * 60, i))


class Rows:
    """The rows of N records once, re-keyed per release: each release aliases subjects under its own key."""

    def __init__(self, n: int, subjects: int, days: int) -> None:
        started = time.perf_counter()
        chunks: list[pa.Table] = []
        digests: list[str] = []
        batches: list[str] = []
        batch: list[OpenedRecord] = []
        identity = _IdentityAliases()
        for record in records(n, subjects, days):
            batch.append(record)
            if len(batch) == 50_000:
                chunks.append(release_rows(batch, "bench", identity))  # type: ignore[arg-type]
                batch = []
        if batch:
            chunks.append(release_rows(batch, "bench", identity))  # type: ignore[arg-type]
        self.plain = pa.concat_tables(chunks)  # subject / batch_ref still the store's values
        self.convert_seconds = time.perf_counter() - started
        del digests, batches

    def for_release(self, release_id: str, aliases: ReleaseAliases) -> pa.Table:
        rows = self.plain.set_column(0, "release_id", pa.array([release_id] * self.plain.num_rows, pa.string()))
        for column, alias in (("subject", aliases.subject), ("batch_ref", aliases.batch)):
            encoded = rows[column].combine_chunks().dictionary_encode()
            mapped = pa.array([alias(v) for v in encoded.dictionary.to_pylist()], pa.string())
            rows = rows.set_column(rows.schema.get_field_index(column), column, mapped.take(encoded.indices))
        return rows


class _IdentityAliases:
    def subject(self, digest: str) -> str:
        return digest

    def batch(self, batch_id: str) -> str:
        return batch_id


@contextmanager
def open_table(kind: str, folder: Path) -> Iterator[ReleaseTable]:
    if kind == "dir":
        from store.backends.dir import DirBackend

        DirBackend(folder / "data").close()
        table = ReleaseTable.open(None, data_dir=folder)
        try:
            yield table
        finally:
            table.close()
        return
    from store.backends.postgres import PostgresBackend

    dsn = os.environ.get("CONSENTRY_TEST_PG_DSN", "postgresql://consentry:consentry@127.0.0.1:5432/consentry_test")
    schema = "bench_" + secrets.token_hex(4)
    pg = PostgresBackend(dsn, schema=schema)
    table = ReleaseTable.open(None, data_dir=folder, backend="postgres", dsn=dsn, schema=schema)
    try:
        yield table
    finally:
        table.close()
        pg.drop_schema()
        pg.close()


def _pyarrow_partitioned(rows: pa.Table, out: Path) -> None:
    """The same rows in the same layout (release/category/day folders, zstd), with pyarrow.dataset."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    keyed = rows.append_column("day", pc.strftime(rows["start"], format="%Y-%m-%d"))
    ds.write_dataset(
        keyed,
        out,
        format="parquet",
        partitioning=["release_id", "category", "day"],
        partitioning_flavor="hive",
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        max_partitions=100_000,
    )


def _size(paths: list[str]) -> int:
    return sum(os.path.getsize(p) for p in paths)


def bench(kind: str, n: int, rounds: int, subjects: int, days: int) -> None:
    print(f"\n== backend {kind}: {n:,} records, {subjects} subjects, {days} days, {rounds} rounds ==")
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp, open_table(kind, Path(tmp) / "store") as table:
        data = Rows(n, subjects, days)
        count = data.plain.num_rows
        print(f"release_rows: {count / data.convert_seconds:,.0f} records/s ({data.convert_seconds:.1f} s)")
        ours: list[float] = []
        single: list[float] = []
        layout: list[float] = []
        for r in range(rounds):
            release_id = f"bench-{r}"
            release = data.for_release(release_id, table.aliases(release_id))
            started = time.perf_counter()
            table.build(release_id, release)
            ours.append(count / (time.perf_counter() - started))
            out = Path(tmp) / f"baseline-{r}"
            started = time.perf_counter()
            pq.write_table(release, f"{out}.parquet", compression="zstd")
            single.append(count / (time.perf_counter() - started))
            started = time.perf_counter()
            _pyarrow_partitioned(release, out)
            layout.append(count / (time.perf_counter() - started))
            shutil.rmtree(out)
            Path(f"{out}.parquet").unlink()
        build, one_file, same_layout = (statistics.median(x) for x in (ours, single, layout))
        print(f"build into the release table: {build:,.0f} records/s")
        for label, baseline in (
            ("one zstd Parquet file", one_file),
            ("same partitions (pyarrow dataset)", same_layout),
        ):
            ratio = build / baseline
            verdict = "OK" if ratio >= 0.5 else "BELOW TARGET"
            print(f"  vs pyarrow, {label}: {baseline:,.0f} records/s; ratio {ratio:.2f}x (target >= 0.5x) {verdict}")
        files = [f for r in range(rounds) for f in table.data_files(f"bench-{r}")]
        table_bytes = _size(files)
        print(f"table: {len(files)} data files, {table_bytes / 1e6:.1f} MB, {rounds * count:,} rows")
        narrow_aliases = "f" * 64
        wide_subject = f"{0:064x}"
        for label, subject in (
            ("subject in one partition", narrow_aliases),
            ("subject in every partition", wide_subject),
        ):
            started = time.perf_counter()
            result = table.erase_subject(subject, now=datetime.now(UTC))
            took = time.perf_counter() - started
            print(
                f"erasure ({label}): {took:.2f} s, {result.rows_deleted:,} rows, "
                f"{len(result.partitions_touched)} of {len(files)} partitions, "
                f"{result.bytes_rewritten / 1e6:.2f} MB rewritten = {result.bytes_rewritten / table_bytes:.1%} of the table"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backend", choices=("dir", "postgres", "both"), default="both")
    args = parser.parse_args()
    kinds = ("dir", "postgres") if args.backend == "both" else (args.backend,)
    for kind in kinds:
        bench(kind, args.records, args.rounds, args.subjects, args.days)


if __name__ == "__main__":
    main()
