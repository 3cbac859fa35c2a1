"""The spec is complete: a reader written from the docs alone opens what the product really makes.

The product (a real vault file, the agent's shipping code, a real store on 127.0.0.1) makes a vault,
a sealed upload the store accepts and the store's receipt; ``independent_reader`` (standard library,
pycryptodome and libsodium only) verifies and decrypts each of them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import shipping
from protocol import b64encode, sign_approval
from protocol.categories import Category
from protocol.windows import window_to_json_dict
from store.auth import issue_token
from tests.factories import apps_window, grant, keyboard_window, mouse_window
from tests.protocol import independent_reader as reader
from tests.store_kit import Harness, Stewards, running_store
from vault import batches
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 3600
PROJECT_PACKAGES = {"agent", "vault", "protocol", "store", "tests"}


def test_the_reader_uses_none_of_the_projects_code() -> None:
    tree = ast.parse(Path(reader.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names) | {"nacl", "Crypto"}, imported
    assert not imported & PROJECT_PACKAGES


@pytest.fixture
def store(tmp_path: Path) -> Harness:
    with running_store("dir", tmp_path, Stewards.make(1, 1)) as harness:
        yield harness


def _policy(store: Harness) -> MachinePolicy:
    keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(store.stewards.signers)}
    return MachinePolicy(
        hold_hours=1,
        allow_short_hold_for_testing=True,  # below the 24 h floor: tests only
        store=StoreConfig(
            url=store.url,
            public_key=b64encode(store.keys.seal.public_bytes),
            log_key=b64encode(store.keys.log.public_bytes),
        ),
        stewards=StewardConfig(keys=keys, approvals_required=1),
    )


def test_an_independent_reader_opens_the_vault_the_upload_and_the_receipt(store: Harness, layout: Layout) -> None:
    policy = _policy(store)
    vault = Vault.open(layout)
    try:
        receipts = {
            c: grant(vault, c, NOW - timedelta(hours=3), policy)
            for c in (Category.KEYBOARD, Category.MOUSE, Category.APPS)
        }
        written = [
            keyboard_window(T, receipts[Category.KEYBOARD]),
            mouse_window(T, receipts[Category.MOUSE]),
            apps_window(T, receipts[Category.APPS]),
        ]
        vault.write_windows(written)
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)

        # The vault file alone (with its key folder): every record decrypts to what was written.
        reading = reader.read_vault(layout.vault_db, layout.key_dir)
        assert reading.device_public_key == vault.device_key.public_bytes
        assert sorted(json.dumps(r["window"], sort_keys=True) for r in reading.records) == sorted(
            json.dumps(window_to_json_dict(w), sort_keys=True) for w in written
        )
        assert {r["category"] for r in reading.records} == {"keyboard", "mouse", "apps"}
        assert reading.checkpoints >= 0 and reading.ledger_head["vault_id"] == reading.vault_id

        # Seal, submit, approve at the real store; the upload is made and kept exactly as shipping makes it.
        info = batches.seal_pending(vault, policy, NOW)
        assert info is not None
        batches.release(vault, info.batch_id, NOW)
        assert shipping.sync(vault, policy, NOW).submitted == [info.batch_id]
        steward = store.stewards.signers[0]
        with store.steward_client(steward) as client:
            digest = client.review(info.batch_id).status.manifest_sha256
            client.decide(sign_approval(steward, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
        assert batches.mark_decision(vault, info.batch_id, "approved", "1 approval(s)", NOW)  # what sync's poll does
        batches.prepare_upload(vault, info.batch_id, store.keys.seal.public_bytes, NOW)  # what sync's ship does first

        row = reader.batch_row(layout.vault_db, info.batch_id)
        opened = reader.open_upload(row["upload"], store.keys.seal.private_bytes(), reading.device_public_key)
        manifest = json.loads(row["manifest"])
        assert opened.header["batch_id"] == info.batch_id == manifest["batch_id"]
        assert opened.header["manifest_sha256"] == hashlib.sha256(reader.canonical(manifest)).hexdigest()
        assert manifest["payload_sha256"] == hashlib.sha256(opened.payload).hexdigest()
        assert sorted((r["category"], r["start"]) for r in opened.records) == sorted(
            (r["category"], r["start"]) for r in reading.records
        )
        with pytest.raises(reader.Unreadable):  # another device's key does not verify it
            reader.open_upload(row["upload"], store.keys.seal.private_bytes(), store.keys.log.public_bytes)

        # The store accepts those very bytes, and its receipt verifies from the docs too.
        report = shipping.sync(vault, policy, NOW)
        assert report.shipped == [info.batch_id], report.errors
        receipt = json.loads(reader.batch_row(layout.vault_db, info.batch_id)["receipt"])
        reader.verify_log_receipt(receipt, store.keys.log.public_bytes)
        assert receipt["entry"]["body"]["batch_id"] == info.batch_id
        assert receipt["entry"]["body"]["header_sha256"] == hashlib.sha256(reader.canonical(opened.header)).hexdigest()
        with pytest.raises(reader.Unreadable):
            reader.verify_log_receipt(receipt, store.keys.seal.public_bytes)  # not the log key

        # After shipping: the records are gone, the signed head and checkpoints still verify.
        after = reader.read_vault(layout.vault_db, layout.key_dir)
        assert after.records == [] and after.checkpoints >= 1
        assert after.ledger_head["seq"] > reading.ledger_head["seq"]
    finally:
        vault.close()


def test_the_reader_refuses_a_record_moved_to_another_row(layout: Layout) -> None:
    vault = Vault.open(layout)
    try:
        receipt = grant(vault, Category.MOUSE, NOW - timedelta(hours=3))
        vault.write_windows([mouse_window(T, receipt), mouse_window(T + 60, receipt)])
        assert len(reader.read_vault(layout.vault_db, layout.key_dir).records) == 2
        with vault.transaction() as db:  # swap the two ciphertexts: each is bound to its record_id
            (a, blob_a), (b, blob_b) = db.execute("SELECT record_id, blob FROM records ORDER BY record_id").fetchall()
            db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_b, a))
            db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (blob_a, b))
    finally:
        vault.close()
    with pytest.raises(reader.Unreadable):
        reader.read_vault(layout.vault_db, layout.key_dir)
