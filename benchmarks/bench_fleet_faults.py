"""Fault soak: simulated workstations shipping through the agent's own code while the store side fails.

Everything on 127.0.0.1, bounded in time. A private PostgreSQL cluster (initdb in a temporary folder,
its own port: restarting it touches no other cluster), ``--stores`` real ``consentry store serve``
processes on it, and a local TCP proxy in front of them (round-robin, like a reverse proxy's
upstream list). ``--agents`` workstations (real vaults; ``devkit.workstations``) each capture two
windows, seal a batch and run one pass of ``agent.shipping.sync`` every ``--interval`` seconds; a
steward approves what is queued. Three phases of the run:

  before   no faults
  during   the proxy refuses, delays and cuts connections (answers lost after the store did the
           work); a store process is killed (SIGKILL) and restarted at random; PostgreSQL is
           restarted once (immediate stop: a crash and recovery)
  after    no faults

Then capture stops and the workstations keep syncing until every queue is empty (or ``--drain``
seconds pass). Reported: batches sealed, stored, lost (a vault let go of the batch -- shipped and
shredded, or closed -- and the store does not hold it; or the store holds a batch no vault sealed:
must be 0), duplicated (stored twice, or other records than the batch had: must be 0), batches still
queued when the drain ended (kept in the vault, not lost, but the queue did not drain: must be 0),
whether the log verifies (every entry rehashed to the signed root), which queues drained,
and the upload latency p50/p99 per phase (from a batch's first upload attempt to the attempt the store
acknowledged, retries included; the phase is where the first attempt started).

There is no baseline to alternate with: the figures of the "before" phase are this run's own baseline
for "during" and "after".

    python benchmarks/bench_fleet_faults.py [--agents 200] [--minutes 5] [--stores 2] [--interval 30]
    python benchmarks/bench_fleet_faults.py --quick      # about 30 s with 30 agents
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit.fault_proxy import FaultProxy, Faults
from devkit.pg_cluster import ThrowawayCluster
from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy
from devkit.workstations import DONE_STATES, Workstation, capture_start, workstation
from kit.store_client import RetryPolicy, StoreClient
from protocol import b64encode, sign_approval
from protocol.auditlog import LogEntry
from store.audit import verify_log
from store.auth import issue_token
from store.backends import open_backend
from store.keys import StoreKeys
from store.settings import StoreSettings
from vault.policy import MachinePolicy, StewardConfig, StoreConfig

PHASES = ("before", "during", "after")


class Clock:
    """Which phase the run is in, by monotonic time since the start."""

    def __init__(self, before: float, during: float, after: float) -> None:
        self.start = time.monotonic()
        self.ends = (before, before + during, before + during + after)

    def phase(self, at: float | None = None) -> str:
        elapsed = (time.monotonic() if at is None else at) - self.start
        for name, end in zip(PHASES, self.ends, strict=True):
            if elapsed < end:
                return name
        return "drain"

    def until(self, phase: str) -> float:
        return self.start + self.ends[PHASES.index(phase)] - time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5.0, help="before + during + after (1 : 3 : 1)")
    parser.add_argument("--stores", type=int, default=2, help="store processes behind the proxy")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between a workstation's passes")
    parser.add_argument("--drain", type=float, default=180.0, help="at most this long for the queues to empty")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="about 30 s: 30 agents, 3 s interval")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.minutes, args.interval, args.drain = 30, 0.5, 3.0, 90.0
    total = args.minutes * 60
    # The workstations' vault keys go to 0600 files in their throw-away folders, never the desktop keyring.
    os.environ["CONSENTRY_KEYSTORE"] = "file"
    random.seed(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="consentry-soak-"))
    cluster = ThrowawayCluster(free_port())
    servers: list[StoreProcess] = []
    stations: list[Workstation] = []
    try:
        cluster.create()
        print(f"private PostgreSQL on 127.0.0.1:{cluster.port} ({cluster.root})", flush=True)
        stewards = Stewards.make(1, 1)
        keys, _ = StoreKeys.load_or_create(tmp / "store" / "keys")
        policy_file = write_policy(tmp / "store-policy.toml", stewards)
        for _ in range(args.stores):  # one at a time: the first applies the migrations
            server = StoreProcess(tmp / "store", policy_file, backend="postgres", port=free_port(), dsn=cluster.dsn)
            servers.append(server.start())
        with FaultProxy([s.port for s in servers], seed=args.seed) as proxy:
            policy = MachinePolicy(
                hold_hours=0,
                allow_short_hold_for_testing=True,  # the employee's hold is not what this measures
                store=StoreConfig(
                    url=proxy.url,
                    public_key=b64encode(keys.seal.public_bytes),
                    log_key=b64encode(keys.log.public_bytes),
                ),
                stewards=StewardConfig(
                    keys={"steward0": b64encode(stewards.signers[0].public_bytes)}, approvals_required=1
                ),
            )
            stations = _enroll(tmp, policy, cluster.dsn, stewards, args.agents)
            print(f"{len(stations)} workstations enrolled; soak {total:.0f} s, then drain", flush=True)
            clock = Clock(total / 5, total * 3 / 5, total / 5)
            report = _soak(args, clock, proxy, servers, cluster, stations, stewards)
            _report(args, clock, proxy, report, stations, servers, keys, cluster.dsn, stewards)
    finally:
        for station in stations:
            station.close()
        for server in servers:
            server.stop()
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


def _enroll(tmp: Path, policy: MachinePolicy, dsn: str, stewards: Stewards, n: int) -> list[Workstation]:
    backend = open_backend("postgres", dsn=dsn, schema="consentry")
    settings = StoreSettings(stewards=stewards.config())
    now = datetime.now(UTC).replace(microsecond=0)
    stations = []
    try:
        for i in range(n):
            station = workstation(tmp / "stations" / f"{i:03d}", policy)
            station.open(now, capture_start(now))
            station.enroll(issue_token(backend, settings, int(now.timestamp())), now)
            stations.append(station)
    finally:
        backend.close()
    return stations


class _Soak:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sync_errors: Counter[str] = Counter()
        self.sealed: Counter[str] = Counter()
        self.chaos: list[str] = []
        self.drained_at: dict[int, float] = {}
        self.approvals = 0


def _soak(
    args: argparse.Namespace,
    clock: Clock,
    proxy: FaultProxy,
    servers: list[StoreProcess],
    cluster: ThrowawayCluster,
    stations: list[Workstation],
    stewards: Stewards,
) -> _Soak:
    state = _Soak()
    stop = threading.Event()
    drain_deadline = clock.start + sum(clock.ends[-1:]) + args.drain

    def run_station(index: int, station: Workstation) -> None:
        rng = random.Random(args.seed * 1000 + index)
        time.sleep(rng.uniform(0, args.interval))  # spread the fleet over the interval
        while not stop.is_set():
            phase = clock.phase()
            now = datetime.now(UTC)
            if phase != "drain":
                if station.capture_and_seal(now):
                    with state.lock:
                        state.sealed[phase] += 1
            try:
                report = station.sync(now, retry=RetryPolicy(attempts=3, base_seconds=0.2, cap_seconds=2.0))
                errors = len(report.errors)
            except Exception as exc:  # noqa: BLE001 -- the store unreachable for the whole pass: next pass
                errors = 1
                with state.lock:
                    state.sync_errors[f"{phase}: {type(exc).__name__}"] += 1
            if errors:
                with state.lock:
                    state.sync_errors[f"{phase}: batch step failed"] += errors
            if phase == "drain" and station.backlog() == 0:
                with state.lock:
                    state.drained_at[index] = time.monotonic()
                return
            if time.monotonic() > drain_deadline:
                return
            time.sleep(rng.uniform(0.5, 1.5) * (args.interval if phase != "drain" else min(args.interval, 2.0)))

    def steward() -> None:
        # Stewards are not what this measures: several review the queue at once so approval keeps up.
        signer = stewards.signers[0]

        def approve(client: StoreClient, batch_id: str) -> None:
            try:
                digest = client.review(batch_id).status.manifest_sha256
                client.decide(sign_approval(signer, batch_id, digest, "approve", created=int(time.time())))
                with state.lock:
                    state.approvals += 1
            except Exception:  # noqa: BLE001 -- faults hit the steward too; the next round picks it up
                pass

        with ThreadPoolExecutor(8) as pool:
            while not stop.is_set():
                try:
                    with StoreClient(proxy.url, signer=signer, role="steward", retry=RetryPolicy(attempts=2)) as client:
                        items = client.queue()
                        list(pool.map(lambda item: approve(client, item.batch_id), items))
                except Exception:  # noqa: BLE001 -- as above
                    pass
                stop.wait(1.0)

    def chaos() -> None:
        rng = random.Random(args.seed)
        stop.wait(max(0.0, clock.until("before")))
        proxy.faults = Faults()
        state.chaos.append(f"{clock.phase()}: proxy faults on")
        pg_restart_at = time.monotonic() + clock.until("during") / 2
        pg_restarted = False
        gap = (3.0, 8.0) if args.quick else (8.0, 20.0)
        while not stop.is_set() and clock.phase() == "during":
            if not pg_restarted and time.monotonic() >= pg_restart_at:
                down = cluster.restart("immediate")
                state.chaos.append(f"PostgreSQL restarted (immediate stop), down {down:.1f} s")
                pg_restarted = True
            else:
                victim = rng.choice(servers)
                victim.kill()
                stop.wait(rng.uniform(0.5, 2.0))
                victim.start(timeout=60)
                state.chaos.append(f"store on port {victim.port} killed (SIGKILL) and restarted")
            stop.wait(min(rng.uniform(*gap), max(0.0, clock.until("during"))))
        if not pg_restarted:
            down = cluster.restart("immediate")
            state.chaos.append(f"PostgreSQL restarted (immediate stop), down {down:.1f} s")
        proxy.faults = None
        state.chaos.append("proxy faults off")

    threads = [threading.Thread(target=run_station, args=(i, s), daemon=True) for i, s in enumerate(stations)]
    helpers = [threading.Thread(target=steward, daemon=True), threading.Thread(target=chaos, daemon=True)]
    for t in threads + helpers:
        t.start()
    last = ""
    while any(t.is_alive() for t in threads):
        time.sleep(2.0)
        phase = clock.phase()
        if phase != last:
            print(f"[{time.monotonic() - clock.start:5.0f} s] phase {phase}", flush=True)
            last = phase
    stop.set()
    for t in helpers:
        t.join(120)
    return state


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no uploads"
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values) * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms ({len(values)} batches)"


def _report(
    args: argparse.Namespace,
    clock: Clock,
    proxy: FaultProxy,
    state: _Soak,
    stations: list[Workstation],
    servers: list[StoreProcess],
    keys: StoreKeys,
    dsn: str,
    stewards: Stewards,
) -> None:
    # What each vault sealed and where its outbox says each batch is.
    outbox: dict[str, str] = {}
    for station in stations:
        outbox.update(station.batches())
    backend = open_backend("postgres", dsn=dsn, schema="consentry")
    try:
        with backend.transaction() as tx:
            stored = {b.batch_id: b for b in tx.stored_batches()}
            leaves = [LogEntry.model_validate_json(d) for d in tx.get_leaves(0, tx.log_size())]
            tx._pg.execute("SELECT batch_id, count(*) FROM records GROUP BY batch_id")  # type: ignore[attr-defined]
            records = dict(tx._pg.fetchall())  # type: ignore[attr-defined]
    finally:
        backend.close()
    logged = Counter(str(e.body["batch_id"]) for e in leaves if e.kind == "batch-stored")
    # Lost: the vault let go of it (shipped and shredded, or closed) and the store does not hold it.
    lost = sorted(b for b, s in outbox.items() if s in DONE_STATES and b not in stored)
    queued = sorted(b for b, s in outbox.items() if s not in DONE_STATES)  # still in a vault's outbox, kept
    unknown = sorted(set(stored) - set(outbox))  # stored, but no vault sealed it
    duplicated = sum(n - 1 for n in logged.values() if n > 1)
    too_many_records = sorted(b for b, row in stored.items() if records.get(b, 0) != row.record_count)
    with StoreClient(servers[0].url, signer=stewards.signers[0], role="steward") as client:
        check = verify_log(client, keys.log.public_bytes, full=True)
    # Upload latency: first attempt -> acknowledged attempt, by the phase of the first attempt.
    by_phase: dict[str, list[float]] = {p: [] for p in (*PHASES, "drain")}
    failed_attempts: Counter[str] = Counter()
    for station in stations:
        first: dict[str, float] = {}
        for attempt in station.timer.attempts:
            first.setdefault(attempt.batch_id, attempt.started)
            if attempt.ok:
                by_phase[clock.phase(first[attempt.batch_id])].append(
                    attempt.started + attempt.seconds - first[attempt.batch_id]
                )
            else:
                failed_attempts[clock.phase(attempt.started)] += 1
    not_drained = [i for i in range(len(stations)) if i not in state.drained_at]
    last_drained = max(state.drained_at.values(), default=clock.start)
    after_capture, after_faults = (
        last_drained - (clock.start + clock.ends[-1]),
        last_drained - (clock.start + clock.ends[1]),
    )
    print()
    print(
        f"agents={len(stations)} minutes={args.minutes:g} stores={args.stores} interval={args.interval:g} s "
        f"seed={args.seed}{' (quick)' if args.quick else ''}"
    )
    events = Counter(state.chaos)
    print("chaos: " + "; ".join(f"{e}{f' (x{n})' if n > 1 else ''}" for e, n in events.items()))
    print(f"proxy connections: {dict(proxy.counts)}")
    print(f"batches sealed: {len(outbox)} ({dict(state.sealed)}); stored: {len(stored)}; steward decisions answered (retries count again): "
          f"{state.approvals}")  # fmt: skip
    print(f"LOST: {len(lost)} (a vault let go of them and the store does not hold them); stored but sealed by no "
          f"vault: {len(unknown)}; still queued in a vault when the drain ended (kept, not lost): {len(queued)}")  # fmt: skip
    print(f"DUPLICATED: {duplicated} logged twice; {len(too_many_records)} with a record count other than sealed")
    print(f"log verifies: yes, {check.entries_checked} entries rehashed to the signed root of size {check.head.size}")
    print(
        f"queues drained: {len(stations) - len(not_drained)} of {len(stations)}"
        + (
            f" (the last {after_faults:.1f} s after the faults stopped, {after_capture:.1f} s after capture stopped)"
            if not not_drained
            else f"; not: {not_drained[:10]}"
        )
    )
    for phase in (*PHASES, "drain"):
        print(f"upload latency {phase:>6}: {_percentiles(by_phase[phase])}; failed attempts {failed_attempts[phase]}")
    print(f"sync passes with errors: {dict(state.sync_errors)}")
    if lost or unknown or duplicated or too_many_records or not_drained:
        sys.exit(1)


if __name__ == "__main__":
    main()
