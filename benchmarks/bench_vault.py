"""Vault write throughput: encrypted window records vs raw sqlite3 inserts of the same plaintext rows.

Both sides write the same rows into a fresh WAL database with synchronous=FULL, into the same
``records`` table and indexes, in transactions of ``--batch`` rows (an agent flush). The raw side
inserts already-serialised plaintext; ours starts from the window models and does everything. The ratio is ours / raw; the target is >= 0.5.

    python benchmarks/bench_vault.py [--records 20000] [--batch 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.categories import Category  # noqa: E402
from tests.factories import grant, keyboard_window  # noqa: E402
from vault.paths import Layout  # noqa: E402
from vault.schema import _M0001_INITIAL  # noqa: E402
from vault.vault import Vault  # noqa: E402


def raw_rate(rows: list[tuple[object, ...]], batch: int, folder: Path) -> float:
    conn = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    # The vault's own records table and indexes, so the difference is our machinery, not the schema.
    for statement in _M0001_INITIAL:
        if "records" in statement:
            conn.execute(statement)
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO records (record_id, category, start, end, key_id, receipt_id, blob) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows[i : i + batch],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


def vault_rate(records: list, batch: int, layout: Layout) -> float:
    with Vault.open(layout) as vault:
        vault.kek()
        t0 = time.perf_counter()
        for i in range(0, len(records), batch):
            vault.write_windows(records[i : i + batch])
        elapsed = time.perf_counter() - t0
        assert vault.count_windows() == len(records)
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("CONSENTRY_KEYSTORE", "file")
    ratios, ours_all, raw_all = [], [], []
    size = 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            layout = Layout(folder / "home")
            start = int(time.time()) // 60 * 60 - 86400
            with Vault.open(layout) as vault:
                rid = grant(vault, Category.KEYBOARD, datetime.now(UTC) - timedelta(days=2))
            records = [keyboard_window(start + 60 * (i % 1440), rid, letters=i % 97) for i in range(args.records)]
            plain = [r.model_dump_json().encode() for r in records]
            size = int(statistics.mean(len(p) for p in plain))
            rows = [
                (i + 1, "keyboard", r.start, r.end, "keyboard/x/0", rid, p)
                for i, (r, p) in enumerate(zip(records, plain, strict=True))
            ]
            raw = raw_rate(rows, args.batch, folder)
            ours = vault_rate(records, args.batch, layout)
            raw_all.append(raw)
            ours_all.append(ours)
            ratios.append(ours / raw)
    print(
        f"vault writes: {args.records} keyboard window records of ~{size} bytes, batches of {args.batch}, {args.repeat} runs"
    )
    print(f"  raw sqlite3 executemany (plaintext): {statistics.median(raw_all):>10,.0f} rows/s")
    print(
        f"  consentry Vault.write_windows      : {statistics.median(ours_all):>10,.0f} records/s "
        "(consent check + serialise + AES-256-GCM + insert)"
    )
    print(f"  ratio ours/raw (median): {statistics.median(ratios):.2f}   target >= 0.50")


if __name__ == "__main__":
    main()
