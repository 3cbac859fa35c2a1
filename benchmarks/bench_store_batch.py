"""The store's fixed cost per batch: ``StoreService.upload`` of 60-record batches, in-process, in ms per batch.

Ours: ``StoreService.upload`` on approved batches (no HTTP): device signature, approval count, chain and
checkpoint checks, HPKE decryption, payload digest, privacy checks over every record, the subject key
and AES-256-GCM sealing of every record, the records written, the audit-log append (leaf, nodes, signed
tree head), the batch's receipt and the device's checkpoint, one commit.

Baseline, "writes": the same physical database work without any of the checks or cryptography -- every
row the upload writes, already prepared (the sealed records, a leaf of the same size, the tree nodes the
leaf completes, a signed head, the batch row's new state and receipt, the checkpoint row), written into
a second store of the same backend and schema with one commit per batch, through one connection kept
open: PostgreSQL a binary COPY of the records and pipelined inserts; ``dir`` a ``BEGIN IMMEDIATE`` and
executemany with the catalog's pragmas (WAL, ``synchronous=FULL``, ``secure_delete``). What ours costs
above it is the fixed cost of verifying, decrypting, checking and sealing (and of its reads).

The two sides alternate round by round (which goes first alternates too), each round on its own fresh
batches, after the ``gc.freeze()`` that ``consentry store serve`` does; medians over the rounds. The
process's own CPU time per batch is printed beside the wall time: on a machine shared with other work
the wall time moves with the load, the CPU time much less. Target (issue 16 §4): ours <= 5 ms per batch.

    python benchmarks/bench_store_batch.py [--backend both|postgres|dir] [--rounds 5] [--batches 40]
        [--agents 10] [--records 60]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit.store_kit import Agent, Stewards, pg_dsn, postgres_available
from protocol import NO_PREVIOUS_BATCH, SealedBatch, decode_payload, merkle, open_batch, subject_digest
from protocol.auditlog import LogEntry, sign_tree_head
from store.audit import DEVICE_FREE_LEAF_FORMAT
from store.auth import Principal
from store.backend import DeviceRow, StoreBackend
from store.backends import open_backend
from store.keys import StoreKeys
from store.record_keys import RecordKeyring
from store.server import freeze_startup_objects
from store.service import StoreService
from store.settings import StoreSettings, SystemClock


@dataclass
class Prepared:
    """One batch, ready for both sides: the upload body, and the rows the baseline writes."""

    who: Principal
    batch: SealedBatch
    records: list[tuple[str, int, str, bytes]]  # (batch_id, idx, category, sealed body)
    leaf: bytes
    head_json: str
    receipt_json: str
    checkpoint: tuple[str, int, str, int, int]


def _store(kind: str, tmp: Path, name: str) -> StoreBackend:
    return open_backend(kind, data_dir=tmp / name, dsn=pg_dsn(), schema=f"bench_{name}_{secrets.token_hex(3)}")


def prepare(
    kind: str, tmp: Path, agents: int, per_agent: int, records: int
) -> tuple[StoreService, StoreBackend, list[list[Prepared]]]:
    """A store with ``agents`` devices and their approved batches, and a second store (same backend) holding
    the same devices and batch rows for the baseline. Returns batches by agent, in chain order."""
    ours = _store(kind, tmp, "ours")
    base = _store(kind, tmp, "base")
    keys = StoreKeys.generate()
    stewards = Stewards.make(2, 2)
    settings = StoreSettings(stewards=stewards.config())
    service = StoreService(ours, keys, settings, SystemClock())
    StoreService(base, keys, settings, SystemClock())  # the same tables, review-set ones included
    keyring = RecordKeyring(keys.records)
    log_key = keys.log
    by_agent: list[list[Prepared]] = []
    for _ in range(agents):
        agent = Agent()
        device = DeviceRow(agent.device.kid, agent.device.public_bytes, 0, 0, NO_PREVIOUS_BATCH, None, None)
        who = Principal("device", agent.device.kid, agent.device.public_bytes, agent.device.kid)
        for backend in (ours, base):
            with backend.transaction() as tx:
                tx.insert_device(device)
        batches = []
        for _ in range(per_agent):
            manifest, payload = agent.next_batch(records)
            service.submit_manifest(who, manifest)
            for signer, approval in zip(stewards.signers, stewards.approvals(manifest), strict=False):
                service.decide(Principal("steward", signer.kid, signer.public_bytes, "s"), manifest.batch_id, approval)
            sealed = agent.seal(manifest, payload, keys.seal.public_bytes)
            subject = subject_digest(manifest.subject)
            with ours.transaction() as tx:
                row = tx.get_batch(manifest.batch_id)
                assert row is not None
            decoded = decode_payload(open_batch(sealed, keys.seal, agent.device.public_bytes)).records
            with base.transaction() as tx:
                tx.insert_batch(row)
                sealed_records = keyring.seal_batch(tx, row.batch_id, subject, decoded, 1)
            rows = [(row.batch_id, r.record_index, r.category, r.sealed) for r in sealed_records]
            entry = LogEntry(
                v=1,
                kind="batch-stored",
                time=int(time.time()),
                body={
                    "format": DEVICE_FREE_LEAF_FORMAT,
                    "batch_id": row.batch_id,
                    "subject_digest": subject,
                    "manifest_sha256": row.manifest_sha256,
                    "header_sha256": sealed.header.digest(),
                    "records": len(rows),
                },
            )
            head = sign_tree_head(log_key, 1, secrets.token_bytes(32), timestamp=entry.time)
            ref = sealed.header.ledger_checkpoint
            batches.append(
                Prepared(
                    who,
                    sealed,
                    rows,
                    entry.leaf_data(),
                    head.model_dump_json(),
                    # a receipt of the size the store keeps: entry, head and an inclusion path
                    '{"v":1,"entry":'
                    + entry.model_dump_json()
                    + ',"tree_head":'
                    + head.model_dump_json()
                    + ',"inclusion":['
                    + ",".join(['"' + "ab" * 32 + '"'] * 10)
                    + "]}",
                    (agent.device.kid, ref.seq, ref.head_hash, sealed.header.created, entry.time),
                )
            )
        by_agent.append(batches)
    return service, base, by_agent


class Writes:
    """The baseline: every row one upload writes, prepared, written with one commit per batch."""

    def __init__(self, kind: str, backend: StoreBackend, tmp: Path) -> None:
        self.kind = kind
        self.size = 0
        if kind == "postgres":
            import psycopg

            schema = backend.schema  # type: ignore[attr-defined]
            self.pg = psycopg.connect(pg_dsn(), options=f"-c search_path={schema}")
        else:
            self.db = sqlite3.connect(tmp / "base" / "catalog.sqlite3", isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
                self.db.execute(f"PRAGMA {pragma}")

    def write(self, p: Prepared) -> None:
        index = self.size
        self.size += 1
        nodes = [(0, index, secrets.token_bytes(32))] + [
            (lv, i, secrets.token_bytes(32)) for lv, i in merkle.completed_nodes(index)
        ]
        batch_id = p.records[0][0]
        update = ("stored", p.batch.header.digest(), p.checkpoint[4], p.receipt_json, len(p.records), batch_id)
        if self.kind == "postgres":
            from store.backends.postgres import copy_rows

            with self.pg.transaction(), self.pg.cursor() as cur:
                copy_rows(cur, p.records)
                with self.pg.pipeline():
                    cur.execute(
                        "INSERT INTO checkpoints (device_kid, seq, head_hash, created, received) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        p.checkpoint,
                    )
                    cur.execute(
                        "INSERT INTO log_leaves (idx, kind, time, data) VALUES (%s, %s, %s, %s)",
                        (index, "batch-stored", 0, p.leaf),
                    )
                    cur.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (%s, %s, %s)", nodes)
                    cur.execute("INSERT INTO log_heads (size, head_json) VALUES (%s, %s)", (index + 1, p.head_json))
                    cur.execute(
                        "UPDATE batches SET state = %s, header_sha256 = %s, stored_at = %s, receipt_json = %s, "
                        "record_count = %s WHERE batch_id = %s",
                        update,
                    )
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO records (batch_id, idx, category, body) VALUES (?, ?, ?, ?)", p.records)
        db.execute(
            "INSERT INTO checkpoints (device_kid, seq, head_hash, created, received) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            p.checkpoint,
        )
        db.execute(
            "INSERT INTO log_leaves (idx, kind, time, data) VALUES (?, ?, ?, ?)", (index, "batch-stored", 0, p.leaf)
        )
        db.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        db.execute("INSERT INTO log_heads (size, head_json) VALUES (?, ?)", (index + 1, p.head_json))
        db.execute(
            "UPDATE batches SET state = ?, header_sha256 = ?, stored_at = ?, receipt_json = ?, record_count = ? WHERE batch_id = ?",
            update,
        )
        db.execute("COMMIT")

    def close(self) -> None:
        (self.pg if self.kind == "postgres" else self.db).close()


def _timed(items: list[Prepared], step: Callable[[Prepared], Any]) -> tuple[float, float]:
    """(wall ms, CPU ms) per item."""
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        step(item)
    n = len(items)
    return (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n


def run(kind: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="consentry-bench-"))
    per_agent = args.rounds * args.batches // args.agents
    service, base, by_agent = prepare(kind, tmp, args.agents, per_agent, args.records)
    # Round r takes the next `batches` batches in chain order (agents interleaved), for each side.
    ordered = [by_agent[a][j] for j in range(per_agent) for a in range(args.agents)]
    writes = Writes(kind, base, tmp)
    ours: list[tuple[float, float]] = []
    baseline: list[tuple[float, float]] = []
    try:
        freeze_startup_objects()  # as `consentry store serve` does before taking requests
        for r in range(args.rounds):
            chunk = ordered[r * args.batches : (r + 1) * args.batches]
            sides = [("ours", chunk), ("writes", chunk)]
            for name, items in sides if r % 2 == 0 else sides[::-1]:
                if name == "ours":
                    ours.append(_timed(items, lambda p: service.upload(p.who, p.batch)))
                else:
                    baseline.append(_timed(items, writes.write))
        load = os.getloadavg()[0]
        o_wall, o_cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
        b_wall, b_cpu = statistics.median(w for w, _ in baseline), statistics.median(c for _, c in baseline)
        ratio = statistics.median(o[0] / b[0] for o, b in zip(ours, baseline, strict=True))
        print(
            f"{kind}: {args.rounds} rounds x {args.batches} batches x {args.records} records "
            f"(load average {load:.1f} at the end)"
        )
        print(f"  ours   StoreService.upload       {o_wall:6.2f} ms/batch wall, {o_cpu:5.2f} ms CPU (target <= 5 ms)")
        print(f"  writes the same rows, one commit {b_wall:6.2f} ms/batch wall, {b_cpu:5.2f} ms CPU")
        print(
            f"  ours / writes {ratio:.2f} (median of the rounds' ratios); ours - writes {o_wall - b_wall:.2f} ms/batch"
        )
        sys.stdout.flush()
    finally:
        writes.close()
        for backend in (service.backend, base):
            if kind == "postgres":
                backend.drop_schema()  # type: ignore[attr-defined]
            backend.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["both", "postgres", "dir"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches per round and side")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--records", type=int, default=60, help="records per batch (60 = one hour of windows)")
    args = parser.parse_args()
    if args.rounds * args.batches % args.agents:
        sys.exit("--rounds x --batches must be a multiple of --agents")
    kinds = ["postgres", "dir"] if args.backend == "both" else [args.backend]
    if "postgres" in kinds and not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    for kind in kinds:
        run(kind, args)


if __name__ == "__main__":
    main()
