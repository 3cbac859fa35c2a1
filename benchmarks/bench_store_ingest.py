"""Store ingest into PostgreSQL vs a raw binary COPY of the same physical rows ("sealed": the headline).

Ours: ``StoreService.upload`` on approved batches -- device signature, approval count, chain and
checkpoint checks, HPKE decryption, payload digest, privacy checks over every record, the subject key
lookup and AES-256-GCM sealing of every record (records are encrypted at rest), binary COPY, the
audit-log append and the commit. The headline baseline, "sealed", is the same physical work the store
does in the database: a binary COPY, in one transaction per batch, of exactly the rows the store
writes (the already-sealed records, into the store's own ``records`` table). A second baseline,
"plain", COPYs the records as JSONB rows into a table laid out as the store kept them before records
were encrypted (the old 0.3 target; it compares against different physical work, so it is no longer
the headline). Everything runs in the same process against the same database, all three in each repeat,
after the same ``gc.freeze()`` that ``consentry store serve`` does at start-up; the three alternate batch by
batch (the order rotating), each baseline into its own table of the store's layout. Target ours/sealed >= 0.5.

    python benchmarks/bench_store_ingest.py [--batches 20] [--records 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from pydantic_core import to_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit.store_kit import Agent, Stewards, pg_dsn, postgres_available
from protocol import NO_PREVIOUS_BATCH, decode_payload, subject_digest
from store.auth import Principal
from store.backend import DeviceRow
from store.backends.postgres import PostgresBackend, record_rows
from store.keys import StoreKeys
from store.server import freeze_startup_objects
from store.service import StoreService
from store.settings import StoreSettings, SystemClock

# The records table as migration 0002_records made it, indexes included.
_PLAIN_TABLE = (
    "CREATE TABLE plain_records (batch_id TEXT NOT NULL, subject_digest TEXT NOT NULL, category TEXT NOT NULL, "
    "start_ts BIGINT NOT NULL, end_ts BIGINT NOT NULL, body JSONB NOT NULL);"
    "CREATE INDEX plain_records_batch ON plain_records (batch_id);"
    "CREATE INDEX plain_records_category ON plain_records (category)"
)


def _plain_rows(
    batch_id: str, subject: str, records: Sequence[dict[str, Any]]
) -> list[tuple[str, str, str, int, int, bytes]]:
    return [(batch_id, subject, r["category"], r["start"], r["end"], to_json(r)) for r in records]


def _copy_plain(cursor: Any, rows: list[tuple[str, str, str, int, int, bytes]]) -> None:
    columns = "batch_id, subject_digest, category, start_ts, end_ts, body"
    with cursor.copy(f"COPY plain_records ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "text", "text", "int8", "int8", "jsonb"])
        for batch_id, subject, category, start, end, body in rows:
            # Jsonb with an identity dumps: the body is already JSON text, so it is not encoded twice.
            copy.write_row((batch_id, subject, category, start, end, Jsonb(body, dumps=bytes)))


def run_once(batches: int, records: int) -> tuple[float, float, float]:
    backend = PostgresBackend(pg_dsn(), schema="bench_" + secrets.token_hex(4))
    try:
        keys = StoreKeys.generate()
        stewards = Stewards.make(2, 2)
        service = StoreService(backend, keys, StoreSettings(stewards=stewards.config()), SystemClock())
        agent = Agent()
        with backend.transaction() as tx:
            tx.insert_device(
                DeviceRow(agent.device.kid, agent.device.public_bytes, 0, 0, NO_PREVIOUS_BATCH, None, None)
            )
        who = Principal("device", agent.device.kid, agent.device.public_bytes, agent.device.kid)
        sealed, raw_rows, plain_rows = [], [], []
        for _ in range(batches):
            manifest, payload = agent.next_batch(records)
            service.submit_manifest(who, manifest)
            for signer, approval in zip(stewards.signers, stewards.approvals(manifest), strict=False):
                service.decide(Principal("steward", signer.kid, signer.public_bytes, "s"), manifest.batch_id, approval)
            sealed.append(agent.seal(manifest, payload, keys.seal.public_bytes))
            with backend.transaction() as tx:  # sealed outside the timed part: raw is the COPY alone
                sealed_records = service.record_keys.seal_batch(
                    tx, manifest.batch_id, subject_digest(manifest.subject), decode_payload(payload).records, 0
                )
            raw_rows.append(record_rows(manifest.batch_id, sealed_records))
            plain_rows.append(
                _plain_rows(manifest.batch_id, subject_digest(manifest.subject), decode_payload(payload).records)
            )
        with backend.transaction() as tx:
            # The baselines' own tables, the same layout as the store's records table (indexes included), so
            # the three writers alternate batch by batch without one's rows in another's way.
            tx._pg.execute("CREATE TABLE sealed_copy (LIKE records INCLUDING ALL)")
            tx._pg.execute(_PLAIN_TABLE)
        freeze_startup_objects()  # as `consentry store serve` does before taking requests
        spent = {"ours": 0.0, "sealed": 0.0, "plain": 0.0}

        def copy_sealed(rows: list[tuple[str, int, str, bytes]]) -> None:
            with (
                backend.transaction() as tx,
                tx._pg.copy("COPY sealed_copy (batch_id, idx, category, body) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["text", "int4", "text", "bytea"])
                for row in rows:
                    copy.write_row(row)

        def copy_plain(rows: list[tuple[str, str, str, int, int, bytes]]) -> None:
            with backend.transaction() as tx:
                _copy_plain(tx._pg, rows)

        for i, (batch, rows, plain) in enumerate(zip(sealed, raw_rows, plain_rows, strict=True)):
            steps = [
                ("ours", lambda b=batch: service.upload(who, b)),
                ("sealed", lambda r=rows: copy_sealed(r)),
                ("plain", lambda r=plain: copy_plain(r)),
            ]
            for name, step in steps[i % 3 :] + steps[: i % 3]:  # the order rotates batch by batch
                start = time.perf_counter()
                step()
                spent[name] += time.perf_counter() - start
        ours, raw, plain = (batches * records / spent[k] for k in ("ours", "sealed", "plain"))
        return ours, raw, plain
    finally:
        backend.drop_schema()
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    results = [run_once(args.batches, args.records) for _ in range(args.repeat)]
    ours = statistics.median(r[0] for r in results)
    raw = statistics.median(r[1] for r in results)
    plain = statistics.median(r[2] for r in results)
    print(f"batches={args.batches} records/batch={args.records} repeat={args.repeat} (medians)")
    print(f"store ingest (verify+decrypt+checks+seal+COPY+log): {ours:12,.0f} records/s")
    print(f"raw binary COPY, plaintext JSONB rows (plain):      {plain:12,.0f} records/s")
    print(f"raw binary COPY, the same sealed rows (sealed):     {raw:12,.0f} records/s")
    print(f"ratio ours/sealed (same physical rows): {ours / raw:.2f} (target >= 0.50)")
    print(f"ratio ours/plain (plaintext JSONB rows, not the same work): {ours / plain:.2f}")


if __name__ == "__main__":
    main()
