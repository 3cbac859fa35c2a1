"""Probe: the release table as Apache Iceberg (ours) vs Delta Lake (deltalake), on the same rows.

Not a project benchmark: a throw-away comparison behind docs/release-table.md. deltalake is not a
dependency of Consentry; install it into a scratch venv (or the dev venv) only to run this:

    pip install deltalake
    python benchmarks/probe_table_formats.py [--records 200000] [--rounds 3]

For each format, alternated round by round (median): write the rows partitioned by category and day;
then delete one subject's rows (copy-on-write; bytes rewritten); then physically remove what the old
versions held (Iceberg: ``ReleaseTable.expire`` with a zero grace period; Delta: ``vacuum(0 h)``,
checkpoint and log clean-up) and search every file under the table -- data, delete files, metadata,
the Delta log -- for the erased subject's pseudonym.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from bench_release import Rows  # noqa: E402

from devkit.table_files import file_contents  # noqa: E402
from store.releases import ReleaseAliases, ReleaseTable  # noqa: E402


def holding(root: Path, needle: str) -> dict[str, Any]:
    """How many data files under ``root`` hold ``needle``, and which log/metadata files do."""
    found: dict[str, Any] = {"data": 0, "metadata": []}
    for path in sorted(root.rglob("*")):
        if path.is_file() and needle.encode() in file_contents(path):
            if path.suffix == ".parquet" and "_delta_log" not in path.parts:
                found["data"] += 1
            else:
                found["metadata"].append(path.name)
    return found


def _iceberg(data: Rows, folder: Path, subject: str) -> dict[str, Any]:
    from store.backends.dir import DirBackend

    DirBackend(folder / "data").close()
    table = ReleaseTable.open(None, data_dir=folder, grace=timedelta(0))
    try:
        rows = data.for_release("probe", table.aliases("probe"))
        started = time.perf_counter()
        table.build("probe", rows)
        write = time.perf_counter() - started
        started = time.perf_counter()
        erased = table.erase_subject(subject, now=datetime.now(UTC))
        delete = time.perf_counter() - started
        root = Path(table.location)
        before = holding(root, erased_alias(table, subject))
        table.expire(datetime.now(UTC) + timedelta(seconds=1))
        after = holding(root, erased_alias(table, subject))
        return {"write": write, "delete": delete, "rewritten": erased.bytes_rewritten, "before": before, "after": after}
    finally:
        table.close()


def erased_alias(table: ReleaseTable, subject: str) -> str:
    return table.aliases("probe").subject(subject)


def _delta(rows: pa.Table, folder: Path, alias: str, configuration: dict[str, str]) -> dict[str, Any]:
    from deltalake import DeltaTable, write_deltalake

    keyed = rows.append_column("day", pc.strftime(rows["start"], format="%Y-%m-%d"))
    uri = str(folder / "delta")
    started = time.perf_counter()
    write_deltalake(uri, keyed, partition_by=["category", "day"], configuration=configuration or None)
    write = time.perf_counter() - started
    table = DeltaTable(uri)
    files_before = set(table.file_uris())
    started = time.perf_counter()
    table.delete(f"subject = '{alias}'")
    delete = time.perf_counter() - started
    table = DeltaTable(uri)
    added = set(table.file_uris()) - files_before
    rewritten = sum(Path(f.removeprefix("file://")).stat().st_size for f in added)
    root = Path(uri)
    before = holding(root, alias)
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    table.create_checkpoint()
    table.cleanup_metadata()
    after = holding(root, alias)
    return {"write": write, "delete": delete, "rewritten": rewritten, "before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = Rows(args.records, 100, 10)
    subject = f"{0:064x}"  # a subject in every partition
    results: dict[str, list[dict[str, Any]]] = {"iceberg": [], "delta": [], "delta (no column stats)": []}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="probe-formats-") as tmp:
            aliases = ReleaseAliases.new()
            rows = data.for_release("probe", aliases)
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for name in order:
                folder = Path(tmp) / name.replace(" ", "-")
                if name == "iceberg":
                    results[name].append(_iceberg(data, folder, subject))
                else:
                    config = {"delta.dataSkippingNumIndexedCols": "0"} if "no column stats" in name else {}
                    results[name].append(_delta(rows, folder, aliases.subject(subject), config))
    count = data.plain.num_rows
    print(f"{count:,} rows, 100 subjects, 10 days, 4 categories; median of {args.rounds} alternated rounds")
    for name, runs in results.items():
        write = statistics.median(x["write"] for x in runs)
        delete = statistics.median(x["delete"] for x in runs)
        rewritten = statistics.median(x["rewritten"] for x in runs)
        last = runs[-1]
        print(
            f"{name:<24} write {count / write:>10,.0f} rows/s | delete one subject {delete:5.2f} s, "
            f"{rewritten / 1e6:5.1f} MB rewritten | files holding the erased value: "
            f"before removal {last['before']}, after {last['after']}"
        )


if __name__ == "__main__":
    main()
