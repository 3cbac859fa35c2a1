"""Scale-out: several ``consentry store serve`` processes on one PostgreSQL database keep one audit log.

Each process appends to the same Merkle log (an advisory transaction lock orders the appends,
``store.backends.postgres``); here two processes append at the same time for different devices, and
the log they leave is one consistent, append-only log that every receipt is part of.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from devkit.components import require
from devkit.store_kit import Stewards, StoreProcess, free_port, pg_dsn, postgres_available, write_policy
from kit.store_client import RetryPolicy, StoreClient
from protocol import LogReceipt
from store.audit import verify_log
from store.backends import open_backend
from store.keys import StoreKeys
from tests.store.test_store_resilience import _check_exactly_once, _prepare

AGENTS = 6
BATCHES_PER_AGENT = 8


def test_two_store_processes_appending_at_once_keep_one_consistent_log(tmp_path: Path) -> None:
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
        plans = _prepare(a.url, backend, stewards, keys, AGENTS, BATCHES_PER_AGENT)
        receipts: list[LogReceipt] = []
        errors: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(AGENTS)

        def ship(index: int) -> None:
            agent, batches = plans[index]
            retry = RetryPolicy(attempts=8, base_seconds=0.05, cap_seconds=1.0)
            clients = [
                StoreClient(url, signer=agent.device, log_public_key=keys.log.public_bytes, retry=retry)
                for url in (a.url, b.url)
            ]
            try:
                start.wait(timeout=60)
                for n, (_, sealed) in enumerate(batches):
                    # Agents start on different processes and alternate: both append at every moment.
                    got = clients[(index + n) % 2].upload(sealed)
                    with lock:
                        receipts.append(got)
            except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
                with lock:
                    errors.append(repr(exc)[:300])
            finally:
                for client in clients:
                    client.close()

        threads = [threading.Thread(target=ship, args=(i,)) for i in range(AGENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        assert len(receipts) == AGENTS * BATCHES_PER_AGENT
        _check_exactly_once(backend, plans, receipts, keys.log.public_bytes)
        assert len({r.leaf_index for r in receipts}) == len(receipts), "two appends took the same leaf"

        steward = stewards.signers[0]
        for url in (a.url, b.url):
            with StoreClient(url, signer=steward, role="steward", log_public_key=keys.log.public_bytes) as client:
                # Every entry hashes to the one signed root both processes serve, and every head a
                # receipt carried (signed by either process) is a prefix of it.
                final = verify_log(client, keys.log.public_bytes, full=True)
                assert final.entries_checked == final.head.size
                for receipt in receipts:
                    client.check_consistency(receipt.tree_head, final.head)
                entries = client.entries(0, final.head.size)
                for receipt in receipts:
                    assert entries[receipt.leaf_index] == receipt.entry
    finally:
        a.stop()
        b.stop()
        backend.drop_schema()  # type: ignore[attr-defined]
        backend.close()
