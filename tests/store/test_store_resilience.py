"""Crashes and concurrency: a store killed at random points during 200 uploads, and two store processes
sharing one PostgreSQL database, still end with every approved batch stored exactly once."""

from __future__ import annotations

import random
import secrets
import threading
import time
from pathlib import Path

from devkit import store_kit
from devkit.components import require
from devkit.store_kit import (
    Agent,
    Stewards,
    StoreProcess,
    free_port,
    pg_dsn,
    postgres_available,
    write_policy,
)
from kit.store_client import RetryPolicy, StoreClient
from protocol import BatchManifest, SealedBatch, manifest_digest, sign_approval, verify_receipt
from store.auth import issue_token
from store.backends import open_backend
from store.keys import StoreKeys
from store.settings import StoreSettings

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends


AGENTS = 4
BATCHES_PER_AGENT = 50  # 200 uploads


def _prepare(url: str, backend, stewards: Stewards, keys: StoreKeys, agents: int, per_agent: int):
    """Enroll agents, submit every manifest and get it approved; return the sealed batches per agent."""
    plans: list[tuple[Agent, list[tuple[BatchManifest, SealedBatch]]]] = []
    settings = StoreSettings(stewards=stewards.config())
    steward_clients = [StoreClient(url, signer=s, role="steward") for s in stewards.signers]
    for _ in range(agents):
        agent = Agent()
        batches = []
        with StoreClient(url, signer=agent.device) as client:
            client.enroll(issue_token(backend, settings, int(time.time())))
            for _ in range(per_agent):
                manifest, payload = agent.next_batch(6)
                client.submit_manifest(manifest)
                for c, s in zip(steward_clients, stewards.signers[: stewards.required], strict=False):
                    c.decide(sign_approval(s, manifest.batch_id, manifest_digest(manifest), "approve", created=0))
                batches.append((manifest, agent.seal(manifest, payload, keys.seal.public_bytes)))
        plans.append((agent, batches))
    for c in steward_clients:
        c.close()
    return plans


def _check_exactly_once(backend, plans, receipts, log_key: bytes) -> None:
    expected = {m.batch_id: sum(m.record_counts.values()) for _, batches in plans for m, _ in batches}
    with backend.transaction() as tx:
        stored = {b.batch_id: b.record_count for b in tx.stored_batches()}
        leaves = tx.get_leaves(0, tx.log_size())
        if backend.kind == "postgres":
            tx._pg.execute("SELECT batch_id, count(*) FROM records GROUP BY batch_id")  # type: ignore[attr-defined]
            rows = dict(tx._pg.fetchall())  # type: ignore[attr-defined]
            assert rows == expected, "records duplicated or lost in PostgreSQL"
    assert stored == expected
    from protocol import LogEntry

    stored_entries = [LogEntry.model_validate_json(leaf) for leaf in leaves]
    ids = [e.body["batch_id"] for e in stored_entries if e.kind == "batch-stored"]
    assert sorted(ids) == sorted(expected), "each batch is logged as stored exactly once"
    for receipt in receipts:
        verify_receipt(receipt, log_key)


def test_store_killed_at_random_points_during_200_uploads_stores_each_batch_once(
    backend_kind: str, tmp_path: Path
) -> None:
    rng = random.Random(20240607)
    stewards = Stewards.make(2, 2)
    data = tmp_path / "store"
    keys, _ = StoreKeys.load_or_create(data / "keys")
    schema = "t_" + secrets.token_hex(6)
    policy = write_policy(tmp_path / "policy.toml", stewards)
    server = StoreProcess(data, policy, backend=backend_kind, port=free_port(), schema=schema).start()
    backend = open_backend(backend_kind, data_dir=data / "data", dsn=pg_dsn(), schema=schema)
    try:
        plans = _prepare(server.url, backend, stewards, keys, AGENTS, BATCHES_PER_AGENT)
        progress = [0]
        receipts = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def ship(agent: Agent, batches) -> None:
            # A budget far above any restart (about 100 s of waiting in all): a restart slowed down by a loaded
            # machine must not use it up; what is under test is the store, not how long the client waits.
            retry = RetryPolicy(attempts=400, base_seconds=0.05, cap_seconds=0.5)
            try:
                with StoreClient(
                    server.url,
                    signer=agent.device,
                    log_public_key=keys.log.public_bytes,
                    retry=retry,
                    timeout=10.0,
                    rng=random.Random(rng.random()),
                ) as client:
                    for _, sealed in batches:
                        receipt = client.upload(sealed)
                        with lock:
                            receipts.append(receipt)
                            progress[0] += 1
            except BaseException as exc:  # noqa: BLE001 -- re-raised in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=ship, args=plan) for plan in plans]
        for t in threads:
            t.start()
        kill_points = sorted(rng.sample(range(5, AGENTS * BATCHES_PER_AGENT - 5), 6))
        restarts = 0
        for point in kill_points:
            while progress[0] < point and any(t.is_alive() for t in threads):
                time.sleep(0.005)
            if not any(t.is_alive() for t in threads):
                break
            time.sleep(rng.uniform(0.0, 0.03))  # land somewhere inside a request
            server.kill()
            time.sleep(rng.uniform(0.05, 0.3))
            server.start()
            restarts += 1
        for t in threads:
            t.join(timeout=240)
        assert not errors, errors
        assert restarts >= 3
        assert progress[0] == AGENTS * BATCHES_PER_AGENT
        _check_exactly_once(backend, plans, receipts, keys.log.public_bytes)
    finally:
        server.stop()
        if backend_kind == "postgres":
            backend.drop_schema()  # type: ignore[attr-defined]
        backend.close()


def test_two_store_processes_on_one_database_store_each_batch_once(tmp_path: Path) -> None:
    require(postgres_available(), "PostgreSQL", "run: bash scripts/start-postgres.sh")
    stewards = Stewards.make(2, 2)
    data = tmp_path / "store"
    keys, _ = StoreKeys.load_or_create(data / "keys")
    schema = "t_" + secrets.token_hex(6)
    policy = write_policy(tmp_path / "policy.toml", stewards)
    a = StoreProcess(data, policy, backend="postgres", port=free_port(), schema=schema).start()
    b = StoreProcess(data, policy, backend="postgres", port=free_port(), schema=schema).start()
    backend = open_backend("postgres", dsn=pg_dsn(), schema=schema)
    try:
        plans = _prepare(a.url, backend, stewards, keys, 3, 10)
        receipts = []
        lock = threading.Lock()

        def send(url: str, agent: Agent, sealed: SealedBatch, out: list) -> None:
            with StoreClient(url, signer=agent.device, log_public_key=keys.log.public_bytes) as client:
                out.append(client.upload(sealed))

        for agent, batches in plans:
            for _, sealed in batches:
                # The same upload hits both processes at the same moment.
                got: list = []
                threads = [threading.Thread(target=send, args=(u, agent, sealed, got)) for u in (a.url, b.url)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
                assert len(got) == 2 and got[0] == got[1], "both processes answer with the one stored receipt"
                with lock:
                    receipts.append(got[0])
        _check_exactly_once(backend, plans, receipts, keys.log.public_bytes)
    finally:
        a.stop()
        b.stop()
        backend.drop_schema()  # type: ignore[attr-defined]
        backend.close()
