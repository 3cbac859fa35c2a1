"""The store refuses a ledger checkpoint that does not extend the last one it witnessed (both backends).

The device's ledger is a real vault's; the store runs over real HTTP. The attacker controls the device
(its key signs whatever ledger it is given): it rewrites the ledger after the store witnessed it and
signs a checkpoint at a higher seq.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.shipping import witness_checkpoint
from devkit import store_kit
from devkit.store_kit import T0, Agent, Harness, running_store
from protocol import LedgerCheckpoint, LedgerLink, extend_chain, sign_checkpoint, with_proof
from protocol.canonical import canonical_json
from protocol.errors import LedgerRolledBack
from protocol.store_errors import Conflict, StoreError
from vault.ledger import ENTRY_VERSION, Checkpoint, chain_hash
from vault.paths import Layout
from vault.vault import Vault

backend_kind = store_kit.backend_kind  # every test runs on the dir and the PostgreSQL backend
NOW = datetime(2026, 3, 1, tzinfo=UTC)
VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "ledger-v1.json").read_text())


@pytest.fixture
def store(backend_kind: str, tmp_path: Path) -> Iterator[Harness]:
    with running_store(backend_kind, tmp_path) as harness:
        yield harness


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    with Vault.open(layout) as v:
        yield v


def _append(vault: Vault, n: int, kind: str = "pause") -> None:
    with vault.transaction():
        for i in range(n):
            vault.ledger.append(kind, {"until": None, "method": "cli", "i": i}, NOW + timedelta(seconds=i))


def _checkpoint(vault: Vault) -> LedgerCheckpoint:
    with vault.transaction():
        cp = vault.ledger.checkpoint(vault.device_key, NOW)
    return LedgerCheckpoint.model_validate(cp._asdict())


def _witnessed(store: Harness, kid: str) -> tuple[int | None, str | None]:
    with store.backend.transaction() as tx:
        device = tx.get_device(kid)
        assert device is not None
        return device.checkpoint_seq, device.checkpoint_hash


def _enrolled(store: Harness, vault: Vault) -> Agent:
    agent = Agent(device=vault.device_key)
    store.enroll(agent)
    return agent


def _refused(store: Harness, agent: Agent, call, error: type[StoreError], code: str) -> None:
    before = _witnessed(store, agent.device.kid)
    with pytest.raises(error) as info:
        call()
    assert info.value.code == code, info.value
    assert _witnessed(store, agent.device.kid) == before, "a refused checkpoint changes nothing"


def _rewrite_tail(layout: Layout, keep: int, forged: int) -> None:
    """Cut the ledger after entry ``keep`` and chain ``forged`` made-up grants on, as sqlite3 allows."""
    conn = sqlite3.connect(layout.vault_db)
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    conn.execute("DELETE FROM ledger WHERE seq > ?", (keep,))
    (prev,) = conn.execute("SELECT hash FROM ledger WHERE seq = ?", (keep,)).fetchone()
    for seq in range(keep + 1, keep + forged + 1):
        at = "2026-03-02T00:00:00.000000Z"
        body = {"v": ENTRY_VERSION, "seq": seq, "kind": "grant", "at": at, "salt": "00" * 16, "category": "keyboard"}
        digest = chain_hash(prev, body)
        conn.execute(
            "INSERT INTO ledger (seq, kind, at, body, prev_hash, hash) VALUES (?, 'grant', ?, ?, ?, ?)",
            (seq, at, canonical_json(body).decode(), prev, digest),
        )
        prev = digest
    conn.commit()
    conn.close()


def test_honest_extension_is_accepted_and_carries_no_entry_content(store: Harness, vault: Vault) -> None:
    agent = _enrolled(store, vault)
    _append(vault, 3)
    first = _checkpoint(vault)
    with store.client(agent) as client:
        witness_checkpoint(vault, client, vault.ledger.checkpoints()[-1], NOW)
        assert _witnessed(store, agent.device.kid) == (first.seq, first.head_hash)
        _append(vault, 4, "revoke")
        second = vault.ledger.checkpoint
        with vault.transaction():
            cp = second(vault.device_key, NOW)
        witness_checkpoint(vault, client, cp, NOW)
    assert _witnessed(store, agent.device.kid) == (cp.seq, cp.head_hash)
    assert vault.meta["store_witnessed_seq"] == str(cp.seq)  # the next proof starts there
    proof = with_proof(
        LedgerCheckpoint.model_validate(cp._asdict()),
        first.seq,
        vault.ledger.extension_links(first.seq, cp.seq),
    )
    wire = proof.model_dump_json()
    assert proof.proof is not None and len(proof.proof.links) == cp.seq - first.seq
    assert all(link.body is None for link in proof.proof.links)
    assert '"method"' not in wire and "revoke" not in wire and '"until"' not in wire


def test_rewritten_ledger_at_a_higher_seq_is_refused(store: Harness, vault: Vault, layout: Layout) -> None:
    agent = _enrolled(store, vault)
    _append(vault, 2)
    _append(vault, 1, "revoke")
    witnessed = _checkpoint(vault)
    with store.client(agent) as client:
        client.submit_checkpoint(witnessed)  # the first one is taken on trust
        # The attacker drops the revoke and chains two forged grants on: a higher seq, another history.
        _rewrite_tail(layout, keep=witnessed.seq - 1, forged=2)
        head_seq, head_hash = vault.ledger.head()
        assert head_seq == witnessed.seq + 1 and vault.ledger.verify().ok  # the chain alone looks fine
        forged = sign_checkpoint(agent.device, head_seq, head_hash, created=T0)
        # Without a proof, a higher checkpoint is no longer taken on trust.
        _refused(store, agent, lambda: client.submit_checkpoint(forged), Conflict, "checkpoint_unproven")
        # With the rewritten ledger's own links, from the genesis or from the witnessed seq: not extending.
        from_genesis = with_proof(forged, 0, vault.ledger.extension_links(0, head_seq))
        _refused(store, agent, lambda: client.submit_checkpoint(from_genesis), Conflict, "checkpoint_not_extending")
        tail = vault.ledger.extension_links(witnessed.seq, head_seq)
        from_witnessed = with_proof(forged, witnessed.seq, tail)
        _refused(store, agent, lambda: client.submit_checkpoint(from_witnessed), Conflict, "checkpoint_not_extending")
        # A proof may only start where the store has a witnessed hash.
        unwitnessed = with_proof(forged, 2, vault.ledger.extension_links(2, head_seq))
        _refused(store, agent, lambda: client.submit_checkpoint(unwitnessed), Conflict, "checkpoint_unproven")
        short = with_proof(forged, witnessed.seq, [])
        _refused(store, agent, lambda: client.submit_checkpoint(short), Conflict, "proof_malformed")
        # This device's own code will not even sign it (the signed head outside the vault says rolled back) ...
        with pytest.raises(LedgerRolledBack), vault.transaction():
            vault.ledger.checkpoint(vault.device_key, NOW)
        # ... and the agent's shipping path, handed the forged checkpoint, is refused by the store.
        with pytest.raises(Conflict) as info:
            witness_checkpoint(vault, client, Checkpoint(**forged.model_dump(exclude={"proof"})), NOW)
        assert info.value.code == "checkpoint_not_extending"
    assert _witnessed(store, agent.device.kid) == (witnessed.seq, witnessed.head_hash)


def test_batch_header_above_the_witnessed_checkpoint_needs_the_proven_checkpoint(store: Harness) -> None:
    agent = Agent()
    store.enroll(agent)
    with store.client(agent) as client:
        client.submit_checkpoint(sign_checkpoint(agent.device, agent.ledger_seq - 1, "ab" * 32, created=T0))
        manifest, sealed = store.shippable(agent)  # its header names seq 5, above the witnessed 4, unproven
        with pytest.raises(Conflict) as info:
            client.upload(sealed)
        assert info.value.code == "checkpoint_unproven"


def test_version_1_entries_are_proven_by_their_bodies() -> None:
    """Entries written before digests existed still chain: the frozen v1 vectors recompute."""
    links = [LedgerLink(body=body) for body in VECTORS["bodies"]]
    assert extend_chain("00" * 32, links) == VECTORS["hashes"]
    with pytest.raises(ValueError):
        LedgerLink(digest="00" * 32, body={"v": 1})
