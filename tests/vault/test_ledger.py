"""The consent ledger: known answers, append-only, and verify naming the first broken entry."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from protocol.errors import InvalidRecord, LedgerBroken
from protocol.signing import SigningKey, verify_signature
from tests.vault.tampering import edit_around_triggers
from vault.ledger import LEDGER_START_HASH, chain_hash, checkpoint_bytes
from vault.paths import Layout
from vault.vault import Vault

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "ledger-v1.json").read_text())
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_known_answer_chain_hashes() -> None:
    prev = LEDGER_START_HASH
    for body, expected in zip(VECTORS["bodies"], VECTORS["hashes"], strict=True):
        prev = chain_hash(prev, body)
        assert prev == expected


def test_known_answer_checkpoint_signature() -> None:
    cp = VECTORS["checkpoint"]
    key = SigningKey(bytes.fromhex(cp["private_key"]))
    assert key.public_bytes.hex() == cp["public_key"] and key.kid == cp["kid"]
    data = checkpoint_bytes(cp["seq"], cp["head_hash"], cp["kid"], cp["at"])
    assert key.sign(data).hex() == cp["signature"]  # Ed25519 is deterministic
    verify_signature(key.public_bytes, data, bytes.fromhex(cp["signature"]))


def _vault_with_entries(layout: Layout, n: int) -> Vault:
    vault = Vault.open(layout)
    with vault.transaction():
        for i in range(n):
            vault.ledger.append("pause", {"until": None, "method": "cli", "i": i}, T0 + timedelta(seconds=i))
    return vault


def test_fresh_ledger_verifies(layout: Layout) -> None:
    with _vault_with_entries(layout, 5) as vault:
        report = vault.ledger.verify(vault.device_key.public_bytes)
        assert report.ok and report.entries == 6  # vault-created + 5


def test_ledger_rejects_update_and_delete(layout: Layout) -> None:
    with _vault_with_entries(layout, 2) as vault:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            vault.db.execute("UPDATE ledger SET kind = 'grant' WHERE seq = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            vault.db.execute("DELETE FROM ledger WHERE seq = 2")


@pytest.mark.parametrize(
    "sql, broken_at",
    [
        ("UPDATE ledger SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = 4", 4),
        ("UPDATE ledger SET hash = '00' || substr(hash, 3) WHERE seq = 3", 3),
        ("DELETE FROM ledger WHERE seq = 3", 4),
        ("UPDATE ledger SET kind = 'grant' WHERE seq = 5", 5),
        ("UPDATE ledger SET at = '2030-01-01T00:00:00.000000Z' WHERE seq = 2", 2),
        ("UPDATE ledger SET prev_hash = hash WHERE seq = 6", 6),
    ],
)
def test_tampered_entry_is_reported_at_the_first_broken_seq(layout: Layout, sql: str, broken_at: int) -> None:
    _vault_with_entries(layout, 5).close()
    edit_around_triggers(layout, sql)
    with Vault.open(layout) as vault:
        report = vault.ledger.verify()
        assert not report.ok and report.first_broken_seq == broken_at, report
        with pytest.raises(LedgerBroken, match=f"entry {broken_at}"):
            vault.ledger.require_valid()


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(layout: Layout) -> None:
    """Recomputing every hash after an edit fools the chain, but not the device's signature."""
    with _vault_with_entries(layout, 3) as vault:
        with vault.transaction():
            vault.ledger.checkpoint(vault.device_key, T0 + timedelta(hours=1))
        rows = list(vault.db.execute("SELECT seq, body FROM ledger ORDER BY seq"))
    conn = sqlite3.connect(layout.vault_db)
    conn.execute("DROP TRIGGER ledger_no_update")
    prev = LEDGER_START_HASH
    for seq, body_text in rows:
        body = json.loads(body_text)
        if seq == 2:
            body["method"] = "forged"
        digest = chain_hash(prev, body)
        from protocol.canonical import canonical_json

        conn.execute(
            "UPDATE ledger SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (canonical_json(body).decode(), prev, digest, seq),
        )
        prev = digest
    conn.commit()
    conn.close()
    with Vault.open(layout) as vault:
        assert vault.ledger.verify().ok  # the chain alone is consistent again
        report = vault.ledger.verify(vault.device_key.public_bytes)
        assert not report.ok and "checkpoint" in (report.reason or "")


def test_flipped_checkpoint_signature_is_detected(layout: Layout) -> None:
    with _vault_with_entries(layout, 1) as vault:
        with vault.transaction():
            cp = vault.ledger.checkpoint(vault.device_key, T0)
        sig = bytearray(bytes.fromhex(cp.signature))
        sig[10] ^= 0x80
        vault.db.execute("UPDATE checkpoints SET signature = ? WHERE seq = ?", (sig.hex(), cp.seq))
        report = vault.ledger.verify(vault.device_key.public_bytes)
        assert not report.ok and "signature" in (report.reason or "")
        forged = cp._replace(signature=sig.hex())
        with pytest.raises(InvalidRecord):
            forged.verify(vault.device_key.public_bytes)


def test_unknown_kind_and_reserved_fields_are_misuse(layout: Layout) -> None:
    with Vault.open(layout) as vault, vault.transaction():
        with pytest.raises(ValueError, match="unknown ledger entry kind"):
            vault.ledger.append("made-up", {}, T0)
        with pytest.raises(ValueError, match="reserved"):
            vault.ledger.append("pause", {"seq": 5}, T0)


def test_checkpoint_signature_that_is_not_even_hex_is_reported(layout: Layout) -> None:
    with _vault_with_entries(layout, 1) as vault:
        with vault.transaction():
            cp = vault.ledger.checkpoint(vault.device_key, T0)
        vault.db.execute("UPDATE checkpoints SET signature = 'zz' WHERE seq = ?", (cp.seq,))
        report = vault.ledger.verify(vault.device_key.public_bytes)
        assert not report.ok and report.first_broken_seq == cp.seq
