"""Erasure removes a subject from either backend; exports are complete, verifiable and marked on erasure."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from devkit import store_kit
from devkit.store_kit import T0, Agent, Harness, running_store
from protocol import sign_erasure, subject_digest, verify_receipt
from protocol.categories import Category
from protocol.store_errors import Forbidden
from store.export import ExportResult, export_parquet

backend_kind = store_kit.backend_kind  # the fixture that runs each test on both backends


def _subject_left_in_backend(store: Harness, subject: str) -> list[str]:
    """Where the subject's pseudonym still appears: any file under the dir store, any row in PostgreSQL."""
    needle = subject.encode()
    if store.backend.kind == "dir":
        root: Path = store.backend.root  # type: ignore[attr-defined]
        return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]
    found = []
    with store.backend.transaction() as tx:
        cur = tx._pg  # type: ignore[attr-defined]
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT count(*) FROM {table} t WHERE strpos(t::text, %s) > 0", (subject,))
            if cur.fetchone()[0]:
                found.append(table)
    return found


def test_erasure_removes_the_subject_from_the_backend(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path) as store:
        alice, bob = Agent(), Agent()
        store.enroll(alice)
        store.enroll(bob)
        with store.client(alice) as a, store.client(bob) as b:
            a.upload(store.shippable(alice, 15)[1])
            a.upload(store.shippable(alice, 15)[1])
            pending, _ = alice.next_batch()
            a.submit_manifest(pending)  # still in review: erased too
            b.upload(store.shippable(bob, 9)[1])
            assert _subject_left_in_backend(store, alice.subject)
            request = sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0)
            receipt = a.request_erasure(request)
            verify_receipt(receipt.log, store.keys.log.public_bytes)
            assert receipt.log.entry.body["records"] == 30 and receipt.log.entry.body["batches"] == 3
            assert receipt.log.entry.body["subject_digest"] == subject_digest(alice.subject)
            assert a.request_erasure(request) == receipt  # retried: same receipt, nothing erased twice
            assert a.batch_status(pending.batch_id).state == "erased"
            assert _subject_left_in_backend(store, alice.subject) == []
            assert store.stored()[:2] == (1, 9)  # bob's batch is untouched
            with pytest.raises(Forbidden) as info:  # nobody erases another device's subject
                b.request_erasure(sign_erasure(bob.device, uuid.uuid4().hex, alice.subject, created=T0))
            assert info.value.code == "subject_not_yours"


def test_export_is_parquet_with_card_datasheet_manifest_and_a_logged_receipt(backend_kind: str, tmp_path: Path) -> None:
    with running_store(backend_kind, tmp_path) as store:
        agents = [Agent() for _ in range(2)]
        for agent in agents:
            store.enroll(agent)
            with store.client(agent) as c:
                c.upload(store.shippable(agent, 12)[1])
        out = tmp_path / "export"
        done: list[int] = []
        result = export_parquet(store.backend, store.keys, out, now=T0, progress=done.append)
        assert sum(done) == 2 * 4  # every batch, once per category pass
        assert result.files == {"data/keyboard.parquet": 8, "data/mouse.parquet": 8, "data/apps.parquet": 8}
        keyboard = pq.read_table(out / "data" / "keyboard.parquet")
        assert keyboard.num_rows == 8 and "keys_letter" in keyboard.column_names
        assert "device_kid" not in keyboard.column_names
        assert {"batch_id", "receipt_id"} <= set(keyboard.column_names)
        assert pq.ParquetFile(out / "data" / "apps.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
        manifest = json.loads((out / "manifest.json").read_text())
        for entry in manifest["files"]:
            assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
        assert all(len(b["approvals"]) == 2 for b in manifest["batches"])
        card = (out / "README.md").read_text()
        assert card.startswith("---\n") and "config_name: keyboard" in card and "path: data/keyboard.parquet" in card
        sheet = (out / "DATASHEET.md").read_text()
        for section in (
            "Motivation",
            "Composition",
            "Collection process",
            "Preprocessing",
            "Uses",
            "Distribution",
            "Maintenance",
        ):
            assert f"## {section}" in sheet
        assert "consentry-notice" in sheet and "fewer than 5" in sheet
        receipt = result.receipt
        verify_receipt(receipt, store.keys.log.public_bytes)
        assert receipt.entry.body["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
        with pytest.raises(ValueError, match="not empty"):
            export_parquet(store.backend, store.keys, out, now=T0)

        with store.client(agents[0]) as c:
            erasure = c.request_erasure(sign_erasure(agents[0].device, uuid.uuid4().hex, agents[0].subject, created=T0))
        assert erasure.log.entry.body["exports_marked"] == [result.export_id]
        with store.backend.transaction() as tx:
            assert tx.export_flags() == {result.export_id: True}
        later = export_parquet(store.backend, store.keys, tmp_path / "later", now=T0)
        assert later.files == {"data/keyboard.parquet": 4, "data/mouse.parquet": 4, "data/apps.parquet": 4}


def test_export_reads_with_hugging_face_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # datasets is a test dependency; offline, with its cache in this test's folder.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    with running_store("dir", tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        with store.client(agent) as c:
            c.upload(store.shippable(agent, 6)[1])
        result = export_parquet(store.backend, store.keys, tmp_path / "out", now=T0)
    for rel, rows in result.files.items():
        category = Path(rel).stem
        plain = datasets.load_dataset("parquet", data_files={"train": str(tmp_path / "out" / rel)})
        via_card = datasets.load_dataset(str(tmp_path / "out"), category)  # the card's per-category configs
        assert plain["train"].num_rows == via_card["train"].num_rows == rows
        assert via_card["train"].column_names == plain["train"].column_names
    assert result.files["data/keyboard.parquet"] == 2


def test_every_export_row_traces_to_its_batch_period_approvals_and_consent_receipt(tmp_path: Path) -> None:
    """Several batches under different consent grants: each row names the batch and the grant it rests on."""
    with running_store("dir", tmp_path) as store:
        alice, bob = Agent(), Agent()
        expected: dict[str, tuple[int, int, dict[str, str]]] = {}  # batch -> (period, receipt per category)
        for agent, day in ((alice, 0), (alice, 1), (bob, 0)):
            if agent.seq == 0:
                store.enroll(agent)
            receipts = {c: f"grant-{uuid.uuid4().hex[:12]}" for c in Category}
            manifest, payload = agent.next_batch(9, start=T0 + day * 86_400, receipts=receipts)
            with store.client(agent) as c:
                c.submit_manifest(manifest)
                store.approve(manifest)
                c.upload(agent.seal(manifest, payload, store.keys.seal.public_bytes))
            by_category = {c.value: r for c, r in receipts.items()}
            expected[manifest.batch_id] = (manifest.period_start, manifest.period_end, by_category)
        export_parquet(store.backend, store.keys, tmp_path / "out", now=T0)

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # The export names batches by its own aliases; each batch's grants are its own, so they identify it here.
    by_receipts = {
        frozenset(v for k, v in r.items() if k in ("keyboard", "mouse", "apps")): b for b, (_, _, r) in expected.items()
    }
    alias_of = {
        by_receipts[frozenset(r["receipt_id"] for r in b["receipts"])]: b["batch_id"] for b in manifest["batches"]
    }
    listed = {b["batch_id"]: b for b in manifest["batches"]}
    assert len(listed) == len(expected) == len(set(alias_of.values()))
    for batch_id, (start, end, receipts) in expected.items():
        entry = listed[alias_of[batch_id]]
        assert entry["period"] == {"from": start, "to": end}
        # The manifest lists the receipts of the categories the batch has records of.
        listed_receipts = {r["receipt_id"]: r["category"] for r in entry["receipts"]}
        assert listed_receipts == {v: k for k, v in receipts.items() if k in ("keyboard", "mouse", "apps")}
        assert all(r["notice_sha256"] and r["lawful_basis"] == "consent" for r in entry["receipts"])
        assert len(entry["approvals"]) == 2
    batch_of = {alias: batch for batch, alias in alias_of.items()}
    seen_batches = set()
    for category in ("keyboard", "mouse", "apps"):
        table = pq.read_table(tmp_path / "out" / "data" / f"{category}.parquet").to_pylist()
        assert len(table) == 3 * 3
        for row in table:
            start, end, receipts = expected[batch_of[row["batch_id"]]]
            assert row["receipt_id"] == receipts[category]
            assert start <= row["start"].timestamp() < row["end"].timestamp() <= end
            seen_batches.add(batch_of[row["batch_id"]])
    assert seen_batches == set(expected)
    card = (tmp_path / "out" / "README.md").read_text()
    sheet = (tmp_path / "out" / "DATASHEET.md").read_text()
    for text in (card, sheet):
        assert "`batch_id`" in text and "`receipt_id`" in text


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("existing", [False, True])
def test_export_is_private_whatever_the_umask(existing: bool, tmp_path: Path) -> None:
    """An export holds personal data: folders 0700 and files 0600, even under umask 000."""
    out = tmp_path / "out"
    if existing:
        out.mkdir(mode=0o777)
        os.chmod(out, 0o777)  # an empty folder others could list, handed to the export
    with running_store("dir", tmp_path) as store:
        agent = Agent()
        store.enroll(agent)
        with store.client(agent) as c:
            c.upload(store.shippable(agent, 6)[1])
        previous = os.umask(0)
        try:
            export_parquet(store.backend, store.keys, out, now=T0)
        finally:
            os.umask(previous)
    modes = _modes(out)
    assert {"data/keyboard.parquet", "manifest.json", "README.md", "DATASHEET.md", "export_receipt.json"} <= set(modes)
    wrong = {path: oct(mode) for path, mode in modes.items() if mode != (0o700 if (out / path).is_dir() else 0o600)}
    assert wrong == {}


def _strings(value: object) -> set[str]:
    """Every string (and number, as text) inside a JSON-like value."""
    if isinstance(value, dict):
        return set().union(*(_strings(k) | _strings(v) for k, v in value.items())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {str(value)}


def test_a_device_reads_only_its_own_log_entries(backend_kind: str, tmp_path: Path) -> None:
    """Other devices' entries (key ids, sequence numbers, counts) are not a device's to read; stewards read all."""
    with running_store(backend_kind, tmp_path) as store:
        alice, bob = Agent(), Agent()
        for agent in (alice, bob):
            store.enroll(agent)
        with store.client(alice) as a, store.client(bob) as b:
            alice_batch = a.upload(store.shippable(alice)[1]).entry.body["batch_id"]
            bob_batch = b.upload(store.shippable(bob)[1]).entry.body["batch_id"]
            b.request_erasure(sign_erasure(bob.device, uuid.uuid4().hex, bob.subject, created=T0))
            export_parquet(store.backend, store.keys, tmp_path / "export", now=T0)
            size = a.tree_head().size
            seen_by_alice, seen_by_bob = a.entries(0, size), b.entries(0, size)
        with store.steward_client(store.stewards.signers[0]) as steward:
            everything = steward.entries(0, size)
        assert len(everything) == size == 2 * 3 + 2  # per device: 2 approvals, stored; bob's erasure; the export
        assert [e.kind for e in seen_by_alice] == ["approval", "approval", "batch-stored"]
        assert {str(e.body.get("batch_id")) for e in seen_by_alice} == {alice_batch}
        assert not _strings([e.body for e in seen_by_alice]) & {bob.device.kid, bob_batch, subject_digest(bob.subject)}
        assert [e.kind for e in seen_by_bob] == ["approval", "approval", "batch-stored", "erasure"]
        assert not _strings([e.body for e in seen_by_bob]) & {alice.device.kid, alice_batch}


def test_export_identifiers_join_nothing_outside_the_export(backend_kind: str, tmp_path: Path) -> None:
    """An export plus every log entry and every id the store keeps: no subject or batch of the export
    matches any of them, and two exports of the same data share no identifier."""
    with running_store(backend_kind, tmp_path) as store:
        alice, bob = Agent(), Agent()
        for agent in (alice, bob):
            store.enroll(agent)
        for agent, day in ((alice, 0), (alice, 1), (bob, 0)):
            manifest, payload = agent.next_batch(9, start=T0 + day * 86_400)
            with store.client(agent) as c:
                c.submit_manifest(manifest)
                store.approve(manifest)
                c.upload(agent.seal(manifest, payload, store.keys.seal.public_bytes))
        first = export_parquet(store.backend, store.keys, tmp_path / "first", now=T0)
        second = export_parquet(store.backend, store.keys, tmp_path / "second", now=T0)
        with store.steward_client(store.stewards.signers[0]) as steward:
            log = steward.entries(0, steward.tree_head().size)
        with store.backend.transaction() as tx:
            batches = tx.stored_batches()
        outside = _strings([e.body for e in log]) | {b.batch_id for b in batches} | {b.subject_digest for b in batches}
        outside |= {b.manifest_sha256 for b in batches} | {b.device_kid for b in batches}

    def identifiers(result: ExportResult) -> tuple[set[str], set[str], str]:
        out = result.out
        rows = [r for p in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
        return {r["subject"] for r in rows}, {r["batch_id"] for r in rows}, (out / "manifest.json").read_text()

    subjects, batch_aliases, manifest_text = identifiers(first)
    assert len(subjects) == 2 and len(batch_aliases) == 3  # rows of one subject or batch still link in the export
    assert not (subjects | batch_aliases) & outside
    own = {first.export_id, second.export_id}  # the export names itself (its log receipt does too): not a row's id
    assert not [value for value in outside - own if len(value) >= 16 and value in manifest_text]
    again_subjects, again_batches, _ = identifiers(second)
    assert not (again_subjects | again_batches) & (subjects | batch_aliases)
