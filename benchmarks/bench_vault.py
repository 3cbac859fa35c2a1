"""Vault write throughput: ``Vault.write_windows`` against raw sqlite3 + AES-256-GCM inserts of the same rows.

Three writers store the same keyboard window records into a fresh WAL database with synchronous=FULL, into
the vault's own ``records`` table and indexes, in transactions of ``--batch`` rows (one agent flush):

- ``raw``: inserts already-serialised plaintext (the floor: what SQLite alone costs);
- ``raw+aes``: the same work the vault must do, in the simplest correct way: serialise each window to JSON,
  AES-256-GCM with a random 96-bit nonce and the record's canonical associated data, insert the ciphertext;
- ``ours``: ``Vault.write_windows`` from the window models (it also checks every record against the consent
  ledger and keeps per-(category, day) data keys).

The headline is ours / raw+aes (target >= 0.85); ours / raw is shown for scale. The writers run in a
different order each round (rotated), so drift of the machine during the run does not favour one side,
and each figure is the median over the rounds.

    python benchmarks/bench_vault.py [--records 20000] [--batch 500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from benchmarks.workload import grant, keyboard_window  # noqa: E402
from protocol.categories import Category  # noqa: E402
from protocol.envelope import record_contexts  # noqa: E402
from vault.paths import Layout  # noqa: E402
from vault.schema import _M0001_INITIAL  # noqa: E402
from vault.vault import Vault  # noqa: E402

INSERT = "INSERT INTO records (record_id, category, start, end, key_id, receipt_id, blob) VALUES (?, ?, ?, ?, ?, ?, ?)"


def _raw_database(path: Path) -> sqlite3.Connection:
    """A database with the vault's pragmas (WAL, synchronous=FULL, secure_delete) and its records table."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA secure_delete = ON")
    for statement in _M0001_INITIAL:
        if "records" in statement:
            conn.execute(statement)
    return conn


def raw_plain(records: list, receipt_id: str, batch: int, folder: Path) -> float:
    plain = [r.model_dump_json().encode() for r in records]  # serialised before the clock starts: the floor
    rows = [
        (i + 1, "keyboard", r.start, r.end, "keyboard/x/0", receipt_id, p)
        for i, (r, p) in enumerate(zip(records, plain, strict=True))
    ]
    conn = _raw_database(folder / "raw.sqlite3")
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


def raw_encrypted(records: list, receipt_id: str, batch: int, folder: Path) -> float:
    conn = _raw_database(folder / "raw-aes.sqlite3")
    key_id = "keyboard/2026-01-01/0"
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    aad = record_contexts("records", key_id, "keyboard")
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        rows = []
        for record_id, r in enumerate(records[i : i + batch], start=i + 1):
            nonce = os.urandom(12)
            blob = b"\x01" + nonce + aead.encrypt(nonce, r.model_dump_json().encode(), aad(record_id))
            rows.append((record_id, "keyboard", r.start, r.end, key_id, receipt_id, blob))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(records) / elapsed


def ours(records: list, layout: Layout, batch: int) -> float:
    with Vault.open(layout) as vault:
        vault.kek()
        t0 = time.perf_counter()
        for i in range(0, len(records), batch):
            vault.write_windows(records[i : i + batch])
        elapsed = time.perf_counter() - t0
        if vault.count_windows() != len(records):
            raise SystemExit("the vault did not store every record")
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("CONSENTRY_KEYSTORE", "file")
    rates: dict[str, list[float]] = {"raw": [], "raw+aes": [], "ours": []}
    ratio_aes: list[float] = []
    ratio_raw: list[float] = []
    size = 0
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            layout = Layout(folder / "home")
            start = int(time.time()) // 60 * 60 - 86400
            with Vault.open(layout) as vault:
                rid = grant(vault, Category.KEYBOARD, datetime.now(UTC) - timedelta(days=2))
            records = [keyboard_window(start + 60 * (i % 1440), rid, letters=i % 97) for i in range(args.records)]
            size = int(statistics.mean(len(r.model_dump_json()) for r in records[:200]))
            writers: list[tuple[str, Callable[[], float]]] = [
                ("raw", partial(raw_plain, records, rid, args.batch, folder)),
                ("raw+aes", partial(raw_encrypted, records, rid, args.batch, folder)),
                ("ours", partial(ours, records, layout, args.batch)),
            ]
            shift = round_number % len(writers)  # rotate the order: each writer goes first, second and last
            measured = {name: run() for name, run in writers[shift:] + writers[:shift]}
            for name, rate in measured.items():
                rates[name].append(rate)
            ratio_aes.append(measured["ours"] / measured["raw+aes"])
            ratio_raw.append(measured["ours"] / measured["raw"])
    print(
        f"vault writes: {args.records} keyboard windows of ~{size} bytes, batches of {args.batch}, {args.rounds} rounds (order rotated)"
    )
    print(f"  raw sqlite3, plaintext pre-serialised : {statistics.median(rates['raw']):>10,.0f} rows/s")
    print(
        f"  raw sqlite3 + AES-256-GCM per row     : {statistics.median(rates['raw+aes']):>10,.0f} rows/s (serialise + seal + insert)"
    )
    print(
        f"  consentry Vault.write_windows         : {statistics.median(rates['ours']):>10,.0f} records/s (+ consent check, data keys)"
    )
    print(f"  ratio ours / raw+aes (median of rounds): {statistics.median(ratio_aes):.2f}   target >= 0.85")
    print(f"  ratio ours / raw     (median of rounds): {statistics.median(ratio_raw):.2f}")


if __name__ == "__main__":
    main()
