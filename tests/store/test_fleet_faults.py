"""Workstations ship through the agent's own outbox code while the network and PostgreSQL fail (issue 16 §4, §5).

A small version of ``benchmarks/bench_fleet_faults.py`` that asserts instead of timing: a real store
process on a private PostgreSQL cluster (restarting it touches no other cluster), reached through a
proxy that refuses connections and cuts answers after the store did the work; PostgreSQL is crashed
and restarted (immediate stop) while the workstations ship, and the store process is SIGKILLed and
restarted. Afterwards every batch the vaults sealed is stored exactly once, the log verifies entry by
entry, and every workstation's queue is empty.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from devkit.fault_proxy import FaultProxy, Faults
from devkit.pg_cluster import ThrowawayCluster
from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy
from devkit.workstations import Workstation, capture_start, workstation
from kit.store_client import RetryPolicy, StoreClient
from protocol import b64encode, sign_approval
from protocol.auditlog import LogEntry
from store.audit import verify_log
from store.auth import issue_token
from store.backends import open_backend
from store.keys import StoreKeys
from store.settings import StoreSettings
from vault.policy import MachinePolicy, StewardConfig, StoreConfig

STATIONS = 4
ROUNDS = 6  # capture-and-ship passes per workstation, faults on throughout
# Heavier than the benchmark's: in a few dozen requests every kind of fault must happen.
FAULTS = Faults(refuse=0.1, cut_answer=0.1, delay=0.1, delay_seconds=(0.05, 0.3))
RETRY = RetryPolicy(attempts=2, base_seconds=0.05, cap_seconds=0.2)


def _approve_queue(url: str, stewards: Stewards) -> None:
    signer = stewards.signers[0]
    try:
        with StoreClient(url, signer=signer, role="steward", retry=RETRY) as client:
            for item in client.queue():
                digest = client.review(item.batch_id).status.manifest_sha256
                client.decide(sign_approval(signer, item.batch_id, digest, "approve", created=int(time.time())))
    except Exception:  # noqa: BLE001 -- the faults hit the steward too; the next round approves
        pass


def _sync_all(stations: list[Workstation], *, capture: bool) -> None:
    for station in stations:
        now = datetime.now(UTC)
        if capture:
            station.capture_and_seal(now)
        try:
            station.sync(now, retry=RETRY)
        except Exception:  # noqa: BLE001 -- a pass the store never answered: the next pass resends
            pass


def test_batches_survive_cut_answers_store_kills_and_a_postgres_crash_exactly_once(home: Path, tmp_path: Path) -> None:
    stewards = Stewards.make(1, 1)
    keys, _ = StoreKeys.load_or_create(tmp_path / "store" / "keys")
    policy_file = write_policy(tmp_path / "store-policy.toml", stewards)
    stations: list[Workstation] = []
    with ThrowawayCluster(free_port()) as cluster:
        server = StoreProcess(tmp_path / "store", policy_file, backend="postgres", port=free_port(), dsn=cluster.dsn)
        server.start()
        try:
            with FaultProxy([server.port], seed=7) as proxy:
                policy = MachinePolicy(
                    hold_hours=0,
                    allow_short_hold_for_testing=True,
                    store=StoreConfig(
                        url=proxy.url,
                        public_key=b64encode(keys.seal.public_bytes),
                        log_key=b64encode(keys.log.public_bytes),
                    ),
                    stewards=StewardConfig(
                        keys={"steward0": b64encode(stewards.signers[0].public_bytes)}, approvals_required=1
                    ),
                )
                backend = open_backend("postgres", dsn=cluster.dsn, schema="consentry")
                now = datetime.now(UTC).replace(microsecond=0)
                try:
                    for i in range(STATIONS):
                        station = workstation(tmp_path / f"station-{i}", policy)
                        station.open(now, capture_start(now))
                        station.enroll(issue_token(backend, StoreSettings(stewards=stewards.config()), int(now.timestamp())), now)  # fmt: skip
                        stations.append(station)
                finally:
                    backend.close()
                proxy.faults = FAULTS
                for round_ in range(ROUNDS):
                    if round_ == 2:
                        cluster.restart("immediate")  # PostgreSQL crashes and recovers mid-run
                    if round_ == 4:
                        server.kill()
                        server.start()
                    _sync_all(stations, capture=True)
                    _approve_queue(proxy.url, stewards)
                assert proxy.counts["refused"] and proxy.counts["answers cut"], proxy.counts
                proxy.faults = None
                deadline = time.monotonic() + 120  # a bound on the drain, not a timing claim
                while any(s.backlog() for s in stations) and time.monotonic() < deadline:
                    _approve_queue(proxy.url, stewards)
                    _sync_all(stations, capture=False)
            sealed: dict[str, str] = {}
            stuck: dict[str, str] = {}
            for station in stations:
                sealed.update(station.batches())
                stuck.update(station.stuck())
            backend = open_backend("postgres", dsn=cluster.dsn, schema="consentry")
            try:
                with backend.transaction() as tx:
                    stored = {b.batch_id: b.record_count for b in tx.stored_batches()}
                    leaves = [LogEntry.model_validate_json(d) for d in tx.get_leaves(0, tx.log_size())]
                    tx._pg.execute("SELECT batch_id, count(*) FROM records GROUP BY batch_id")  # type: ignore[attr-defined]
                    records = dict(tx._pg.fetchall())  # type: ignore[attr-defined]
            finally:
                backend.close()
            with StoreClient(server.url, signer=stewards.signers[0], role="steward") as client:
                check = verify_log(client, keys.log.public_bytes, full=True)
        finally:
            for station in stations:
                station.close()
            server.stop()
    assert len(sealed) == STATIONS * ROUNDS  # every pass sealed one batch (sealing is local)
    assert set(sealed.values()) == {"shipped"}, stuck  # every queue drained
    assert set(stored) == set(sealed)  # nothing lost, nothing the vaults did not seal
    assert records == stored  # no batch's records written twice
    logged = Counter(str(e.body["batch_id"]) for e in leaves if e.kind == "batch-stored")
    assert set(logged) == set(sealed) and set(logged.values()) == {1}  # stored once each
    assert check.entries_checked == len(leaves)
