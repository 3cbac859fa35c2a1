"""100 concurrent simulated agents shipping approved batches to one store process over HTTP.

The store runs as ``consentry store serve`` (a separate process, PostgreSQL backend by default). Enrollment,
manifests and approvals are set up first; then every agent uploads its batches, in order, all agents at
once. Prints throughput, upload latency p50/p99, and the lost and duplicated batch counts (target 0 and 0),
checked against the backend afterwards.

With ``--processes N`` (PostgreSQL) each round is run twice, alternating which goes first: once with one
store process, once with N processes sharing the database and key folder, the agents spread over them
round-robin (what a reverse proxy's upstream list does). It prints the batches/s ratio of N processes to
one, medians over ``--rounds`` (target 1.7 with 2 processes).

    python benchmarks/bench_store_agents.py [--agents 100] [--batches 3] [--records 60] [--backend postgres]
        [--processes 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit.store_kit import Agent, Stewards, StoreProcess, free_port, pg_dsn, postgres_available, write_policy
from kit.store_client import RetryPolicy, StoreClient
from protocol import NO_PREVIOUS_BATCH, LogEntry
from store.auth import Principal
from store.backend import DeviceRow
from store.backends import open_backend
from store.keys import StoreKeys
from store.service import StoreService
from store.settings import StoreSettings, SystemClock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--batches", type=int, default=3, help="batches per agent")
    parser.add_argument("--records", type=int, default=60, help="records per batch (60 = one hour of windows)")
    parser.add_argument("--backend", choices=["dir", "postgres"], default="postgres")
    parser.add_argument("--processes", type=int, default=1, help="also run with this many store processes")
    parser.add_argument("--rounds", type=int, default=3, help="with --processes: alternated rounds")
    args = parser.parse_args()
    if args.backend == "postgres" and not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    if args.processes == 1:
        run(args, 1)
        return
    if args.backend != "postgres":
        sys.exit("several store processes share one PostgreSQL database: use --backend postgres")
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    for r in range(args.rounds):
        for n in (1, args.processes) if r % 2 == 0 else (args.processes, 1):
            rates[n].append(run(args, n))
    one, many = statistics.median(rates[1]), statistics.median(rates[args.processes])
    print(f"median batches/s: 1 process {one:,.1f}; {args.processes} processes {many:,.1f}")
    print(f"ratio {args.processes} processes / 1: {many / one:.2f} (target >= 1.7 with 2)")


def run(args: argparse.Namespace, processes: int) -> float:
    """One round with ``processes`` store processes on a fresh schema; returns batches/s."""
    tmp = Path(tempfile.mkdtemp(prefix="consentry-bench-"))
    schema = "bench_" + secrets.token_hex(4)
    stewards = Stewards.make(2, 2)
    keys, _ = StoreKeys.load_or_create(tmp / "store" / "keys")
    backend = open_backend(args.backend, data_dir=tmp / "store" / "data", dsn=pg_dsn(), schema=schema)
    policy = write_policy(tmp / "policy.toml", stewards)
    servers: list[StoreProcess] = []
    try:
        for _ in range(processes):  # one at a time: the first applies the migrations
            servers.append(
                StoreProcess(tmp / "store", policy, backend=args.backend, port=free_port(), schema=schema).start()
            )
        # Setup straight through the service on the same backend (the server keeps no state of its own).
        service = StoreService(backend, keys, StoreSettings(stewards=stewards.config()), SystemClock())
        plans = []
        for _ in range(args.agents):
            agent = Agent()
            with backend.transaction() as tx:
                tx.insert_device(
                    DeviceRow(agent.device.kid, agent.device.public_bytes, 0, 0, NO_PREVIOUS_BATCH, None, None)
                )
            who = Principal("device", agent.device.kid, agent.device.public_bytes, agent.device.kid)
            sealed = []
            for _ in range(args.batches):
                manifest, payload = agent.next_batch(args.records)
                service.submit_manifest(who, manifest)
                for signer, approval in zip(stewards.signers, stewards.approvals(manifest), strict=False):
                    service.decide(
                        Principal("steward", signer.kid, signer.public_bytes, "s"),
                        manifest.batch_id,
                        approval,
                    )
                sealed.append(agent.seal(manifest, payload, keys.seal.public_bytes))
            plans.append((agent, sealed))
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.agents)

        def ship(agent: Agent, batches: list, url: str) -> None:
            with StoreClient(
                url,
                signer=agent.device,
                log_public_key=keys.log.public_bytes,
                retry=RetryPolicy(attempts=8, base_seconds=0.1, cap_seconds=2.0),
                timeout=60,
            ) as client:
                barrier.wait()
                for batch in batches:
                    start = time.perf_counter()
                    try:
                        client.upload(batch)
                    except Exception as exc:  # noqa: BLE001 -- counted as lost below
                        with lock:
                            failures.append(repr(exc)[:200])
                        return
                    with lock:
                        latencies.append(time.perf_counter() - start)

        threads = [
            threading.Thread(target=ship, args=(*plan, servers[i % processes].url)) for i, plan in enumerate(plans)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        expected = {b.header.batch_id for _, batches in plans for b in batches}
        with backend.transaction() as tx:
            stored = {b.batch_id for b in tx.stored_batches()}
            entries = [LogEntry.model_validate_json(d) for d in tx.get_leaves(0, tx.log_size())]
            record_dupes = 0
            if args.backend == "postgres":
                tx._pg.execute("SELECT count(*) FROM records")  # type: ignore[attr-defined]
                record_dupes = tx._pg.fetchone()[0] - len(stored) * args.records  # type: ignore[attr-defined]
        logged = Counter(e.body["batch_id"] for e in entries if e.kind == "batch-stored")
        lost = len(expected - stored)
        duplicated = sum(n - 1 for n in logged.values() if n > 1) + max(record_dupes, 0) // max(args.records, 1)
        total = len(latencies)
        latencies.sort()
        print(
            f"agents={args.agents} batches/agent={args.batches} records/batch={args.records} backend={args.backend} "
            f"store processes={processes}"
        )
        print(
            f"uploads: {total} in {elapsed:.2f} s -> {total / elapsed:,.1f} batches/s, "
            f"{total * args.records / elapsed:,.0f} records/s"
        )
        print(
            f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[min(total - 1, int(total * 0.99))] * 1000:.0f} ms"
        )
        print(f"lost batches: {lost}   duplicated batches: {duplicated}   client errors: {len(failures)}")
        for failure in failures[:5]:
            print("  ", failure)
        sys.stdout.flush()
        return total / elapsed
    finally:
        for server in servers:
            server.stop()
        if args.backend == "postgres":
            backend.drop_schema()  # type: ignore[attr-defined]
        backend.close()
        shutil.rmtree(tmp, ignore_errors=True)  # keys, the dir backend's files and the server's log


if __name__ == "__main__":
    main()
