"""100 concurrent simulated agents shipping approved batches to one store process over HTTP.

The store runs as ``consentry store serve`` (a separate process, PostgreSQL backend by default). Enrollment,
manifests and approvals are set up first; then every agent uploads its batches, in order, all agents at
once. Prints throughput, upload latency p50/p99, and the lost and duplicated batch counts (target 0 and 0),
checked against the backend afterwards.

With ``--processes N`` (PostgreSQL) each round is run twice, alternating which goes first: once with one
store process, once with N processes sharing the database and key folder, the agents spread over them
round-robin (what a reverse proxy's upstream list does). It prints the batches/s ratio of N processes to
one, medians over ``--rounds`` (target 1.7 with 2 processes), and the most the CPU allows that ratio on
this machine (``cpu_ceiling_words``).

The load generator (``--client``): ``raw`` (default) builds, signs and serialises every upload request
before the clock starts, and each agent thread sends its own with ``http.client`` on one kept-alive
connection; the receipts are verified (log signature, inclusion proof) after the clock stops. ``kit`` is
the agent's own ``StoreClient``, which signs each request as it goes, verifies each receipt and fetches a
consistency proof for every receipt after the first (an extra request per upload) -- closer to a real
fleet, but on a 2-core machine the generator then takes much of a core from the store. Each run prints
the CPU seconds per batch of the store processes, of PostgreSQL's processes (all of them: other work on
the cluster counts too) and of the generator, read from ``/proc``.

    python benchmarks/bench_store_agents.py [--agents 100] [--batches 3] [--records 60] [--backend postgres]
        [--processes 1] [--rounds 3] [--client raw|kit]
"""

from __future__ import annotations

import argparse
import http.client
import os
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
from protocol import NO_PREVIOUS_BATCH, LogEntry, LogReceipt, SealedBatch, verify_receipt
from protocol.request_signing import sign_request
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
    parser.add_argument("--client", choices=["raw", "kit"], default="raw", help="the load generator (see above)")
    args = parser.parse_args()
    if args.backend == "postgres" and not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    if args.processes == 1:
        run(args, 1)
        return
    if args.backend != "postgres":
        sys.exit("several store processes share one PostgreSQL database: use --backend postgres")
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    cpu_per_batch: list[tuple[float, float, float]] = []  # of the 1-process rounds: store, PostgreSQL, generator
    for r in range(args.rounds):
        for n in (1, args.processes) if r % 2 == 0 else (args.processes, 1):
            rate, cpu = run(args, n)
            rates[n].append(rate)
            if n == 1:
                cpu_per_batch.append(cpu)
    one, many = statistics.median(rates[1]), statistics.median(rates[args.processes])
    print(f"median batches/s: 1 process {one:,.1f}; {args.processes} processes {many:,.1f}")
    print(f"ratio {args.processes} processes / 1: {many / one:.2f} (target >= 1.7 with 2)")
    print(cpu_ceiling_words(args.processes, os.cpu_count() or 1, cpu_per_batch))


def cpu_ceiling_words(processes: int, cores: int, cpu_per_batch: list[tuple[float, float, float]]) -> str:
    """The highest ratio the CPU allows, from the 1-process rounds' CPU per batch (medians).

    One store process does its Python work on one core at a time, so it stores at most 1/store batches/s;
    N processes at most N/store, and all the work on the machine at most cores/(store + PostgreSQL +
    generator). The ratio N/1 can therefore not exceed min(N, cores * store / (store + PostgreSQL + generator))
    while the database and the generator share the machine's cores with the store."""
    store, postgres, generator = (statistics.median(c[i] for c in cpu_per_batch) for i in range(3))
    ceiling = min(processes, cores * store / (store + postgres + generator))
    return (
        f"CPU ceiling of that ratio on {cores} cores: {ceiling:.2f} (1-process rounds, per batch: store "
        f"{store:.1f} ms, PostgreSQL {postgres:.1f} ms, generator {generator:.1f} ms; "
        f"min({processes}, {cores} x store / all))"
    )


def run(args: argparse.Namespace, processes: int) -> tuple[float, tuple[float, float, float]]:
    """One round with ``processes`` store processes on a fresh schema; returns batches/s and the CPU
    milliseconds per batch of the store processes together, PostgreSQL and the generator."""
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
                StoreProcess(tmp / "store", policy, backend=args.backend, port=free_port(), schema=schema).start(
                    timeout=120
                )
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
        receipts: list[bytes] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.agents)
        # raw: every request built, signed and serialised before the clock starts
        prepared = [[_signed_upload(agent, batch) for batch in sealed] for agent, sealed in plans]

        def ship_raw(requests: list[tuple[bytes, dict[str, str]]], port: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                barrier.wait()
                for body, headers in requests:
                    start = time.perf_counter()
                    for _attempt in range(8):  # 503 busy: retry after a moment, as the agent does
                        conn.request("POST", "/v1/uploads", body=body, headers=headers)
                        answer = conn.getresponse()
                        data = answer.read()
                        if answer.status != 503:
                            break
                        time.sleep(0.1)
                        headers = {**headers, **_resign(headers)}
                    if answer.status != 200:
                        with lock:
                            failures.append(f"HTTP {answer.status}: {data[:200]!r}")
                        return
                    with lock:
                        latencies.append(time.perf_counter() - start)
                        receipts.append(data)
            except Exception as exc:  # noqa: BLE001 -- counted as lost below
                with lock:
                    failures.append(repr(exc)[:200])
            finally:
                conn.close()

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

        if args.client == "raw":
            threads = [
                threading.Thread(target=ship_raw, args=(requests, servers[i % processes].port))
                for i, requests in enumerate(prepared)
            ]
        else:
            threads = [
                threading.Thread(target=ship, args=(*plan, servers[i % processes].url)) for i, plan in enumerate(plans)
            ]
        pids = [s.proc.pid for s in servers]  # type: ignore[attr-defined]
        sampler = _WaitSampler(pids) if args.backend == "postgres" else None
        cpu_before = ([_cpu_seconds(p) for p in pids], _postgres_cpu(), time.process_time())
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        cpu_after = ([_cpu_seconds(p) for p in pids], _postgres_cpu(), time.process_time())
        waits = sampler.stop() if sampler is not None else ""
        for data in receipts:  # outside the clock: every receipt is signed by the log key and proves inclusion
            verify_receipt(LogReceipt.model_validate_json(data), keys.log.public_bytes)
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
        n = max(total, 1)
        store_cpu = [(b - a) * 1000 / n for a, b in zip(cpu_before[0], cpu_after[0], strict=True)]
        print(
            "CPU per batch: store process"
            + ("es " if processes > 1 else " ")
            + " + ".join(f"{c:.1f}" for c in store_cpu)
            + f" ms, PostgreSQL {(cpu_after[1] - cpu_before[1]) * 1000 / n:.1f} ms, "
            f"generator {(cpu_after[2] - cpu_before[2]) * 1000 / n:.1f} ms; "
            f"load average {os.getloadavg()[0]:.1f} after"
        )
        if waits:
            print(waits)
        print(f"lost batches: {lost}   duplicated batches: {duplicated}   client errors: {len(failures)}")
        for failure in failures[:5]:
            print("  ", failure)
        sys.stdout.flush()
        postgres_cpu = (cpu_after[1] - cpu_before[1]) * 1000 / n
        generator_cpu = (cpu_after[2] - cpu_before[2]) * 1000 / n
        return total / elapsed, (sum(store_cpu), postgres_cpu, generator_cpu)
    finally:
        for server in servers:
            server.stop()
        if args.backend == "postgres":
            backend.drop_schema()  # type: ignore[attr-defined]
        backend.close()
        shutil.rmtree(tmp, ignore_errors=True)  # keys, the dir backend's files and the server's log


def _signed_upload(agent: Agent, batch: SealedBatch) -> tuple[bytes, dict[str, str]]:
    body = batch.model_dump_json().encode()
    headers = sign_request(agent.device, "device", "POST", "/v1/uploads", body, now=int(time.time()))
    headers["content-type"] = "application/json"
    _SIGNING[headers["consentry-nonce"]] = (agent, body)  # for _resign
    return body, headers


_SIGNING: dict[str, tuple[Agent, bytes]] = {}


def _resign(headers: dict[str, str]) -> dict[str, str]:
    """Fresh auth headers (a new nonce) for a retried request."""
    agent, body = _SIGNING[headers["consentry-nonce"]]
    fresh = sign_request(agent.device, "device", "POST", "/v1/uploads", body, now=int(time.time()))
    _SIGNING[fresh["consentry-nonce"]] = (agent, body)
    return fresh


class _WaitSampler:
    """Every 5 ms, what the store processes' PostgreSQL sessions do (pg_stat_activity, by application_name):
    running, idle in a transaction (the store computing), or waiting -- on which lock or on the WAL flush."""

    def __init__(self, pids: list[int]) -> None:
        import psycopg

        self._names = [f"consentry-store-{pid}" for pid in pids]
        self._conn = psycopg.connect(pg_dsn(), autocommit=True)
        self._counts: Counter[str] = Counter()
        self._holder: Counter[str] = Counter()
        self._samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.005):
            rows = self._conn.execute(
                "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
                "WHERE application_name = ANY(%s) AND state <> 'idle'",
                (self._names,),
            ).fetchall()
            holder = self._conn.execute(
                "SELECT a.state, a.wait_event_type, a.wait_event FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = ANY(%s)",
                (self._names,),
            ).fetchone()
            if holder is not None:  # what the session holding the audit log's lock is doing
                state, kind, event = holder
                self._holder[f"{kind}: {event}" if kind else state] += 1
            self._samples += 1
            for state, kind, event, query in rows:
                if kind == "Lock":
                    what = "advisory (audit log)" if event == "advisory" else f"{event} ({query.split()[0]} ...)"
                    self._counts["waiting on lock: " + what] += 1
                elif kind in ("IO", "LWLock") and event:
                    self._counts[f"waiting on {kind}: {event}"] += 1
                elif state == "idle in transaction":
                    self._counts["in a transaction, store computing"] += 1
                else:
                    self._counts["running a statement"] += 1

    def stop(self) -> str:
        self._done.set()
        self._thread.join()
        self._conn.close()
        n = max(self._samples, 1)
        parts = [f"{what} {count / n:.2f}" for what, count in self._counts.most_common()]
        held = [f"{what} {count / n:.0%}" for what, count in self._holder.most_common()]
        return (
            "store sessions, mean number at a time: "
            + ("; ".join(parts) or "none")
            + "\naudit-log lock held, by what its holder was doing (share of samples): "
            + (", ".join(held) or "never seen held")
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of every process named postgres (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


if __name__ == "__main__":
    main()
