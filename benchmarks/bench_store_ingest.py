"""Store ingest into PostgreSQL vs a raw binary COPY of the same rows.

Ours: ``StoreService.upload`` on approved batches -- device signature, approval count, chain and
checkpoint checks, HPKE decryption, payload digest, privacy checks over every record, binary COPY, the
audit-log append and the commit. Raw: a binary COPY of the already-prepared rows into the same table in
one transaction per batch. Both run in the same process against the same database, after the same
``gc.freeze()`` that ``consentry store serve`` does at start-up. Target ratio >= 0.3.

    python benchmarks/bench_store_ingest.py [--batches 20] [--records 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.store_kit import Agent, Stewards, pg_dsn, postgres_available
from vault.release import GENESIS_HASH, decode_payload, manifest_digest, subject_digest
from vault.store.auth import Principal
from vault.store.backend import DeviceRow
from vault.store.backends.postgres import PostgresBackend, copy_rows, record_rows
from vault.store.keys import StoreKeys
from vault.store.server import freeze_startup_objects
from vault.store.service import StoreService
from vault.store.settings import StoreSettings, SystemClock


def run_once(batches: int, records: int) -> tuple[float, float]:
    backend = PostgresBackend(pg_dsn(), schema="bench_" + secrets.token_hex(4))
    try:
        keys = StoreKeys.generate()
        stewards = Stewards.make(2, 2)
        service = StoreService(backend, keys, StoreSettings(stewards=stewards.config()), SystemClock())
        agent = Agent()
        with backend.transaction() as tx:
            tx.insert_device(DeviceRow(agent.device.kid, agent.device.public_bytes, 0, 0, GENESIS_HASH, None, None))
        who = Principal("device", agent.device.kid, agent.device.public_bytes, agent.device.kid)
        sealed, raw_rows = [], []
        for _ in range(batches):
            manifest, payload = agent.next_batch(records)
            service.submit_manifest(who, manifest)
            for signer, approval in zip(stewards.signers, stewards.approvals(manifest), strict=False):
                service.decide(Principal("steward", signer.kid, signer.public_bytes, "s"), manifest.batch_id, approval)
            sealed.append(agent.seal(manifest, payload, keys.seal.public_bytes))
            raw_rows.append(
                record_rows(manifest.batch_id, subject_digest(manifest.subject), decode_payload(payload).records)
            )
        freeze_startup_objects()  # as `consentry store serve` does before taking requests
        start = time.perf_counter()
        for batch in sealed:
            service.upload(who, batch)
        ours = batches * records / (time.perf_counter() - start)
        with backend.transaction() as tx:
            tx._pg.execute("TRUNCATE records")
        start = time.perf_counter()
        for rows in raw_rows:
            with backend.transaction() as tx:
                copy_rows(tx._pg, rows)
        raw = batches * records / (time.perf_counter() - start)
        assert manifest_digest  # imported for symmetry with the agent side
        return ours, raw
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
    print(f"batches={args.batches} records/batch={args.records} repeat={args.repeat} (medians)")
    print(f"store ingest (verify+decrypt+checks+COPY+log): {ours:12,.0f} records/s")
    print(f"raw binary COPY of the same rows:              {raw:12,.0f} records/s")
    print(f"ratio ours/raw: {ours / raw:.2f} (target >= 0.30)")


if __name__ == "__main__":
    main()
