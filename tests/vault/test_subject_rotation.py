"""Subject pseudonyms rotate per policy period: unlinkable at the store and in exports, all erased together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agent import shipping
from devkit.factories import grant, keyboard_window, mouse_window
from devkit.store_kit import Harness, Stewards, running_store
from protocol import b64encode, decode_payload, read_manifest, sign_approval
from protocol.auditlog import subject_digest
from protocol.categories import Category
from store.auth import issue_token
from store.export import export_parquet
from vault import batches, outbox, subjects
from vault.paths import Layout
from vault.policy import MachinePolicy, StewardConfig, StoreConfig
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = 86_400
TODAY = int(NOW.timestamp()) // DAY * DAY
# With subject_rotation_days = 1 every UTC day is a period: these two windows are in two periods.
P1, P2 = TODAY - 2 * DAY + 600, TODAY - DAY + 600
GRANTED = NOW - timedelta(days=3)


def _policy(store: Harness | None = None, rotation_days: int = 1) -> MachinePolicy:
    if store is None:
        return MachinePolicy(hold_hours=24, subject_rotation_days=rotation_days)
    keys = {f"steward{i}": b64encode(s.public_bytes) for i, s in enumerate(store.stewards.signers)}
    return MachinePolicy(
        hold_hours=24,
        subject_rotation_days=rotation_days,
        store=StoreConfig(
            url=store.url,
            public_key=b64encode(store.keys.seal.public_bytes),
            log_key=b64encode(store.keys.log.public_bytes),
        ),
        stewards=StewardConfig(keys=keys, approvals_required=store.stewards.required),
    )


def _two_periods(vault: Vault, policy: MachinePolicy) -> None:
    r = {c: grant(vault, c, GRANTED, policy) for c in (Category.KEYBOARD, Category.MOUSE)}
    vault.write_windows(
        [
            keyboard_window(P1, r[Category.KEYBOARD]),
            mouse_window(P1, r[Category.MOUSE]),
            keyboard_window(P2, r[Category.KEYBOARD]),
            mouse_window(P2, r[Category.MOUSE]),
        ]
    )


def _seal_all(vault: Vault, policy: MachinePolicy) -> list[outbox.BatchInfo]:
    sealed = []
    while (info := batches.seal_pending(vault, policy, NOW)) is not None:
        sealed.append(info)
    return sealed


def test_aligned_periods_are_the_same_for_every_workstation() -> None:
    assert subjects.aligned_period(P1, 1) == (TODAY - 2 * DAY, TODAY - DAY)
    start, end = subjects.aligned_period(P1, 30)
    assert start % (30 * DAY) == 0 and end - start == 30 * DAY and start <= P1 < end


def test_a_batch_never_spans_two_subject_periods(layout: Layout) -> None:
    policy = _policy()
    with Vault.open(layout) as vault:
        _two_periods(vault, policy)
        first, second = _seal_all(vault, policy)
        assert first.record_counts == second.record_counts == {"keyboard": 1, "mouse": 1}
        s1, s2 = batches.subject_of(vault, first.batch_id), batches.subject_of(vault, second.batch_id)
        assert s1 != s2 and s1.startswith("subj-") and s2.startswith("subj-")
        # The new subject is random, not derived from the old one (no shared prefix beyond the tag).
        assert s1[5:13] != s2[5:13]
        for info in (first, second):
            starts = {r["start"] for r in decode_payload(batches.payload(vault, info.batch_id)).records}
            assert len({subjects.aligned_period(s, 1) for s in starts}) == 1
        # The vault keeps the map; a later seal in the same period reuses that period's subject.
        assert [p.subject for p in subjects.periods(vault)] == [s1, s2]
        # The employee's ledger says which pseudonym each batch left under.
        sealed_under = [e.body["subject"] for e in vault.ledger.entries() if e.kind == "batch-sealed"]
        assert sealed_under == [s1, s2]
        assert set(subjects.all_subjects(vault)) >= {s1, s2}


def test_with_the_default_rotation_one_period_is_one_subject(layout: Layout) -> None:
    policy = MachinePolicy(hold_hours=24)
    assert policy.subject_rotation_days == 30
    with Vault.open(layout) as vault:
        r = grant(vault, Category.KEYBOARD, GRANTED, policy)
        start, end = subjects.aligned_period(P1, 30)
        inside = [t for t in (P1, P2) if start <= t < end]
        vault.write_windows([keyboard_window(t, r) for t in inside])
        assert len(_seal_all(vault, policy)) == 1


def _ship_all(store: Harness, vault: Vault, policy: MachinePolicy, sealed: list[outbox.BatchInfo]) -> None:
    for info in sealed:
        batches.release(vault, info.batch_id, NOW)
    report = shipping.sync(vault, policy, NOW)
    assert report.submitted == [i.batch_id for i in sealed], report.errors
    signer = store.stewards.signers[0]
    for info in sealed:
        with store.steward_client(signer) as client:
            digest = client.review(info.batch_id).status.manifest_sha256
            client.decide(sign_approval(signer, info.batch_id, digest, "approve", created=int(NOW.timestamp())))
    report = shipping.sync(vault, policy, NOW)
    assert sorted(report.shipped) == sorted(i.batch_id for i in sealed), report.errors


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Harness]:
    with running_store("dir", tmp_path, Stewards.make(1, 1)) as harness:
        yield harness


def test_two_periods_reach_the_store_and_the_export_as_unlinkable_subjects(store: Harness, layout, tmp_path) -> None:
    policy = _policy(store)
    with Vault.open(layout) as vault:
        _two_periods(vault, policy)
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
        sealed = _seal_all(vault, policy)
        assert len(sealed) == 2
        used = [batches.subject_of(vault, i.batch_id) for i in sealed]
        _ship_all(store, vault, policy, sealed)
    with store.backend.transaction() as tx:
        at_store = {tx.get_batch(i.batch_id).subject_digest for i in sealed}  # type: ignore[union-attr]
    assert at_store == {subject_digest(s) for s in used} and len(at_store) == 2
    # The consent references the store sees do not link the periods either: one grant covers both,
    # but each period cites it under its own alias, in force since no earlier than the period began.
    with store.backend.transaction() as tx:
        rows = [tx.get_batch(i.batch_id) for i in sealed]
    stored = [read_manifest(row.manifest_json or "") for row in rows if row is not None]
    cited = [{r.receipt_id for r in m.consent_receipts} for m in stored]
    granted = [{r.granted_at for r in m.consent_receipts} for m in stored]
    assert cited[0].isdisjoint(cited[1]) and granted[0].isdisjoint(granted[1])
    assert all(c.passed for m in stored for c in m.privacy_checks)
    out = tmp_path / "export"
    export_parquet(store.backend, store.keys, out, now=int(NOW.timestamp()))
    for category in ("keyboard", "mouse"):
        table = pq.read_table(out / "data" / f"{category}.parquet").to_pylist()
        by_period: dict[int, list[dict[str, object]]] = {}
        for row in table:
            start = row["start"].timestamp()
            by_period.setdefault(subjects.aligned_period(int(start), 1)[0], []).append(row)
        assert len(by_period) == 2
        first, second = by_period.values()
        # Nothing in a row links period 1 to period 2: not the subject, nor a consent-receipt reference.
        for column in ("subject", "receipt_id"):
            assert {r[column] for r in first}.isdisjoint({r[column] for r in second}), column
    listed = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["batches"]
    cited_in_export = [{r["receipt_id"] for r in b["receipts"]} for b in listed]
    assert len(cited_in_export) == 2 and cited_in_export[0].isdisjoint(cited_in_export[1])


def test_erasure_names_every_subject_the_vault_ever_used(store: Harness, layout) -> None:
    policy = _policy(store)
    with Vault.open(layout) as vault:
        _two_periods(vault, policy)
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
        sealed = _seal_all(vault, policy)
        _ship_all(store, vault, policy, sealed)
        assert store.stored()[:2] == (2, 4)
        line = shipping.request_store_erasure(vault, policy, "all", NOW)
        assert line is not None
        requests = outbox.erasure_requests(vault)
        assert requests and all(r.receipt is not None and r.last_error is None for r in requests)
        assert store.stored()[:2] == (0, 0)  # both periods' records are gone from the store
        # New data after the erasure gets a fresh subject, never one the store was asked to erase.
        erased = set(subjects.all_subjects(vault))
        r = grant(vault, Category.KEYBOARD, NOW, policy)
        vault.write_windows([keyboard_window(TODAY - DAY + 7200, r)])
        (again,) = _seal_all(vault, policy)
        assert batches.subject_of(vault, again.batch_id) not in erased


def test_the_datasheet_states_the_real_window_length_and_the_rotation(store: Harness, layout, tmp_path) -> None:
    policy = _policy(store, rotation_days=1)
    with Vault.open(layout) as vault:
        r = grant(vault, Category.KEYBOARD, GRANTED, policy)
        window = keyboard_window(P1, r).model_copy(update={"end": P1 + 10})  # a 10 s window, as in the demo
        vault.write_windows([window])
        shipping.enroll(vault, policy, issue_token(store.backend, store.settings, int(NOW.timestamp())), NOW)
        _ship_all(store, vault, policy, _seal_all(vault, policy))
    out = tmp_path / "export"
    export_parquet(store.backend, store.keys, out, now=int(NOW.timestamp()))
    sheet = (out / "DATASHEET.md").read_text(encoding="utf-8")
    assert "10 s" in sheet and "60 s" not in sheet.replace("default 60 s", "")
    assert "subject_rotation_days" in sheet and "not derived" in sheet
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "policy period" in card


def test_mydata_shows_the_employee_every_pseudonym(layout: Layout) -> None:
    from click.testing import CliRunner

    from agent.cli.main import cli

    policy = _policy()
    with Vault.open(layout) as vault:
        _two_periods(vault, policy)
        used = [batches.subject_of(vault, i.batch_id) for i in _seal_all(vault, policy)]
    result = CliRunner().invoke(cli, ["mydata", "--json"])
    assert result.exit_code == 0, result.output
    assert [s["subject"] for s in json.loads(result.output)["subjects"]] == used
    text = CliRunner().invoke(cli, ["mydata"]).output
    assert all(s in text for s in used) and "one per policy period" in text


def test_a_vault_made_before_rotation_migrates_and_keeps_its_pseudonym_for_the_current_period(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault import schema

    before = [m for m in schema.MIGRATIONS if m.name != "0004_subject_periods"]
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", before)
        with Vault.open(layout) as old:
            original = old.subject
            r = grant(old, Category.KEYBOARD, GRANTED)
            old.write_windows([keyboard_window(P1, r), keyboard_window(P2, r)])
            assert old.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'subjects'").fetchone() is None
    with Vault.open(layout) as vault:
        assert "0004_subject_periods" in schema.applied_migrations(vault.db)
        first, second = _seal_all(vault, _policy())
        assert batches.subject_of(vault, first.batch_id) == original  # batches already at the store match
        assert batches.subject_of(vault, second.batch_id) != original


def test_a_changed_rotation_length_never_overlaps_live_periods(layout: Layout) -> None:
    with Vault.open(layout) as vault, vault.transaction():
        month = subjects.subject_at(vault, P1, 30, NOW)
        inside = subjects.subject_at(vault, month.period_end - 60, 1, NOW)  # IT shortened it to 1 day
        after = subjects.subject_at(vault, month.period_end + 60, 1, NOW)
    assert inside == month  # a period keeps its bounds and its subject
    assert after.subject != month.subject
    assert (after.period_start, after.period_end) == (month.period_end, month.period_end + DAY)
