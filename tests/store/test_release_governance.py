"""Governed releases on a real store (both backends): purpose-bound requests, k, M-of-N approval over the
manifest hash, the build, and lineage marks on erasure. Bad input is refused and changes nothing."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from devkit import store_kit
from devkit.store_kit import T0, Agent, Harness, running_store
from protocol import SigningKey, b64encode, sign_erasure, subject_digest
from protocol.categories import Category
from store.releases import governance_db as db
from store.releases.consumers import ConsumerConfig, ReleasePolicy
from store.releases.governance import (
    ApprovalMismatch,
    BelowK,
    ManifestTampered,
    NotApproved,
    PurposeNotCovered,
    UnknownConsumer,
    build_release,
    decide_release,
    request_release,
    show_release,
    sign_decision,
)
from store.releases.governance_sink import ParquetReleaseSink
from store.releases.lineage import ERASED_FLAG, list_runs, record_use, sign_use
from store.releases.requests import sign_request

backend_kind = store_kit.backend_kind
NOW = T0 + 2 * 86_400
PURPOSE = "work-pattern-research"  # what store_kit's consent receipts list


def _policy(consumer: SigningKey, k: int = 5) -> ReleasePolicy:
    return ReleasePolicy(k_min=k, consumers=ConsumerConfig(keys={"ml-team": b64encode(consumer.public_bytes)}))


def _fill(store: Harness, subjects: int) -> list[Agent]:
    agents = [Agent() for _ in range(subjects)]
    for agent in agents:
        store.enroll(agent)
        with store.client(agent) as c:
            c.upload(store.shippable(agent, 12)[1])
    return agents


def _request(consumer: SigningKey, purpose: str = PURPOSE, categories=(Category.KEYBOARD, Category.MOUSE)):
    return sign_request(
        consumer,
        release_id=uuid.uuid4().hex,
        purpose=purpose,
        categories=categories,
        period_start=T0 - 86_400,
        period_end=T0 + 86_400,
        description="typing rhythm model, v1",
        created=NOW,
    )


def _state(store: Harness) -> tuple[int, int, int]:
    """(audit-log size, release requests, release decisions): what 'nothing changed' compares."""
    with store.backend.transaction() as tx:
        db.ensure_tables(tx)
        return tx.log_size(), db.count(tx, "release_requests"), db.count(tx, "release_decisions")


def _approve_all(store: Harness, release_id: str, digest: str) -> None:
    for signer in store.stewards.signers[: store.stewards.required]:
        decision = sign_decision(signer, release_id, digest, "approve", created=NOW)
        decide_release(store.backend, store.keys, store.settings.stewards, decision, now=NOW)


def test_release_is_built_only_after_the_quorum_approved_its_manifest_hash(backend_kind: str, tmp_path: Path) -> None:
    consumer = SigningKey.generate()
    with running_store(backend_kind, tmp_path) as store:
        _fill(store, 5)
        policy = _policy(consumer)
        stewards = store.settings.stewards
        status = request_release(store.backend, store.keys, policy, stewards, _request(consumer), now=NOW)
        manifest = status.manifest
        assert status.state == "review" and status.log is not None and status.log.entry.kind == "release-request"
        assert manifest["eligible"] == {
            "keyboard": {"records": 20, "subjects": 5},
            "mouse": {"records": 20, "subjects": 5},
        }
        checks = manifest["privacy_checks"]
        assert checks["k_distinct_subjects"]["by_category"]["keyboard"] == {"subjects": 5, "passed": True}
        assert any(c.startswith("keys_letter") for c in checks["columns"]["keyboard"])
        assert "subject" in checks["linkable_columns"] and manifest["period"]["from"].endswith("UTC")
        sink = ParquetReleaseSink(tmp_path / "releases")
        first = store.stewards.signers[0]
        decide_release(
            store.backend,
            store.keys,
            stewards,
            sign_decision(first, status.release_id, status.manifest_sha256, "approve", created=NOW),
            now=NOW,
        )
        with pytest.raises(NotApproved, match="1 of 2 steward approvals"):
            build_release(store.backend, store.keys, stewards, status.release_id, sink, now=NOW, retention_days=30)
        assert not sink.folder(status.release_id).exists()
        second = sign_decision(
            store.stewards.signers[1], status.release_id, status.manifest_sha256, "approve", created=NOW
        )
        assert decide_release(store.backend, store.keys, stewards, second, now=NOW).state == "approved"
        built = build_release(store.backend, store.keys, stewards, status.release_id, sink, now=NOW, retention_days=30)
        assert (built.rows, built.subjects) == (40, 5) and built.log.entry.kind == "release-build"
        keyboard = pq.read_table(sink.folder(status.release_id) / "keyboard.parquet")
        assert keyboard.num_rows == 20 and len(set(keyboard["subject"].to_pylist())) == 5
        assert not (sink.folder(status.release_id) / "apps.parquet").exists()  # not requested, not released
        kinds = [json.loads(leaf)["kind"] for leaf in _leaves(store)]
        assert kinds[-4:] == ["release-request", "release-approval", "release-approval", "release-build"]


def _leaves(store: Harness) -> list[bytes]:
    with store.backend.transaction() as tx:
        return [bytes(leaf) for leaf in tx.get_leaves(0, tx.log_size())]


def test_bad_requests_and_decisions_are_refused_and_change_nothing(backend_kind: str, tmp_path: Path) -> None:
    consumer = SigningKey.generate()
    with running_store(backend_kind, tmp_path) as store:
        _fill(store, 4)
        stewards = store.settings.stewards
        before = _state(store)
        with pytest.raises(UnknownConsumer, match=r"\[consumers.keys\]"):
            request_release(
                store.backend, store.keys, _policy(SigningKey.generate()), stewards, _request(consumer), now=NOW
            )
        with pytest.raises(
            PurposeNotCovered,
            match="'ad-targeting': excluded 32 records because their consent receipts do not list 'ad-targeting'",
        ):
            request_release(
                store.backend, store.keys, _policy(consumer), stewards, _request(consumer, "ad-targeting"), now=NOW
            )
        with pytest.raises(BelowK, match="at least 5 distinct subjects, and keyboard: 4 subjects, mouse: 4 subjects"):
            request_release(store.backend, store.keys, _policy(consumer), stewards, _request(consumer), now=NOW)
        assert _state(store) == before

        status = request_release(
            store.backend, store.keys, _policy(consumer, k=4), stewards, _request(consumer), now=NOW
        )
        before = _state(store)
        other_hash = secrets.token_hex(32)
        with pytest.raises(ApprovalMismatch, match="another manifest hash"):
            decision = sign_decision(store.stewards.signers[0], status.release_id, other_hash, "approve", created=NOW)
            decide_release(store.backend, store.keys, stewards, decision, now=NOW)
        with pytest.raises(ApprovalMismatch, match="not one of the store's stewards"):
            decision = sign_decision(
                SigningKey.generate(), status.release_id, status.manifest_sha256, "approve", created=NOW
            )
            decide_release(store.backend, store.keys, stewards, decision, now=NOW)
        assert _state(store) == before

        _approve_all(store, status.release_id, status.manifest_sha256)
        tampered = dict(status.manifest, purpose="ad-targeting")
        with store.backend.transaction() as tx:  # someone edits the stored manifest behind the store's back
            db._q(
                tx,
                "UPDATE release_requests SET manifest_json = ? WHERE release_id = ?",
                (json.dumps(tampered), status.release_id),
            )
        before = _state(store)
        sink = ParquetReleaseSink(tmp_path / "releases")
        with pytest.raises(ManifestTampered, match="no longer matches the hash"):
            build_release(store.backend, store.keys, stewards, status.release_id, sink, now=NOW, retention_days=30)
        assert _state(store) == before and not sink.folder(status.release_id).exists()
        assert show_release(store.backend, stewards, status.release_id).state == "approved"


def test_erasure_marks_every_run_that_read_a_release_holding_the_subject(backend_kind: str, tmp_path: Path) -> None:
    consumer = SigningKey.generate()
    with running_store(backend_kind, tmp_path) as store:
        agents = _fill(store, 5)
        policy, stewards = _policy(consumer), store.settings.stewards
        sink = ParquetReleaseSink(tmp_path / "releases")
        status = request_release(store.backend, store.keys, policy, stewards, _request(consumer), now=NOW)
        _approve_all(store, status.release_id, status.manifest_sha256)
        build_release(store.backend, store.keys, stewards, status.release_id, sink, now=NOW, retention_days=30)
        for run in ("rhythm-v1", "rhythm-v1-eval"):
            receipt = record_use(
                store.backend, store.keys, policy, sign_use(consumer, status.release_id, run, created=NOW), now=NOW
            )
            assert receipt.entry.kind == "release-use"
        with pytest.raises(UnknownConsumer):
            record_use(
                store.backend,
                store.keys,
                policy,
                sign_use(SigningKey.generate(), status.release_id, "x", created=NOW),
                now=NOW,
            )
        assert [r.flag for r in list_runs(store.backend, policy)] == [None, None]

        alice = agents[0]
        with store.client(alice) as c:
            erased = c.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        body = erased.log.entry.body
        assert body["subject_digest"] == subject_digest(alice.subject)
        assert (body["releases_with_subject"], body["runs_notified"]) == (1, 2)
        runs = list_runs(store.backend, policy)
        assert sorted((r.run, r.flag) for r in runs) == [("rhythm-v1", ERASED_FLAG), ("rhythm-v1-eval", ERASED_FLAG)]
        assert all(r.consumer == "ml-team" for r in runs)
        with store.client(alice) as c:  # the same subject again (a new request): no release holds it any more
            again = c.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        assert (again.log.entry.body["releases_with_subject"], again.log.entry.body["runs_notified"]) == (0, 0)


def _approved_table_release(
    store: Harness, backend_kind: str, tmp_path: Path, consumer: SigningKey, subjects: int
) -> tuple[Any, list[Agent], ReleasePolicy, Any]:
    """The store's release table, ``subjects`` employees' batches, and a release of them the quorum approved."""
    from store.releases.governance_sink import open_release_table

    schema = getattr(store.backend, "schema", "consentry")
    table = open_release_table(store.settings, tmp_path / "store", backend_kind, store_kit.pg_dsn(), schema)
    agents = _fill(store, subjects)
    policy = _policy(consumer)
    status = request_release(store.backend, store.keys, policy, store.settings.stewards, _request(consumer), now=NOW)
    _approve_all(store, status.release_id, status.manifest_sha256)
    return table, agents, policy, status


def test_release_is_a_table_snapshot_and_erasure_rewrites_it_and_says_so(backend_kind: str, tmp_path: Path) -> None:
    """The build goes into the real release table (Iceberg; catalog in the store's own database); an erasure
    through the real store takes the subject's rows out of it and its receipt counts releases and runs."""
    pytest.importorskip("pyiceberg", reason="the [release] extra: pip install -e '.[store,release]'")
    from store.app import create_app
    from store.releases.governance_sink import TableReleaseSink, release_table_eraser
    from store.server import ThreadedServer

    consumer = SigningKey.generate()
    with running_store(backend_kind, tmp_path) as store:
        table, agents, policy, status = _approved_table_release(store, backend_kind, tmp_path, consumer, 5)
        stewards = store.settings.stewards
        built = build_release(
            store.backend, store.keys, stewards, status.release_id, TableReleaseSink(table), now=NOW, retention_days=30
        )
        assert built.written["tag"] == f"release/{status.release_id}" and table.read(status.release_id).num_rows == 40
        record_use(
            store.backend, store.keys, policy, sign_use(consumer, status.release_id, "rhythm-v1", created=NOW), now=NOW
        )
        alice = agents[0]
        alias = table.aliases(status.release_id).subject(subject_digest(alice.subject))
        assert alias in table.read(status.release_id)["subject"].to_pylist()

        app = create_app(store.backend, store.keys, store.settings, erase_from_releases=release_table_eraser(table))
        with ThreadedServer(app) as server:  # the store as `store serve` runs it: with the table's eraser
            from kit.store_client import StoreClient

            with StoreClient(server.url, signer=alice.device, log_public_key=store.keys.log.public_bytes) as c:
                receipt = c.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))
        body = receipt.log.entry.body
        assert (body["releases_rewritten"], body["releases_with_subject"], body["runs_notified"]) == (1, 1, 1)
        after = table.read(status.release_id)
        assert after.num_rows == 32 and alias not in after["subject"].to_pylist()
        from agent.erasure_words import released_data_sentence  # what the employee's erase command says

        assert released_data_sentence([receipt.model_dump(mode="json")]) == (
            "1 dataset release that held your data was rewritten without it, and 1 training run that used it "
            "was told to retrain or unlearn."
        )


def test_an_erasure_while_a_build_reads_its_records_reaches_the_release(backend_kind: str, tmp_path: Path) -> None:
    """An employee erases after the build read their records and before it wrote them: the release must not
    hold them once the build ends (a large build reads for minutes, so this is no corner case)."""
    pytest.importorskip("pyiceberg", reason="the [release] extra: pip install -e '.[store,release]'")
    from kit.store_client import StoreClient
    from store.app import create_app
    from store.releases.governance_sink import TableReleaseSink, release_table_eraser
    from store.server import ThreadedServer

    with running_store(backend_kind, tmp_path) as store:
        table, agents, _, status = _approved_table_release(store, backend_kind, tmp_path, SigningKey.generate(), 6)
        stewards = store.settings.stewards
        alice = agents[0]
        app = create_app(store.backend, store.keys, store.settings, erase_from_releases=release_table_eraser(table))
        with ThreadedServer(app) as server:  # the store as `store serve` runs it, with the table's eraser

            def alice_erases(_batches: int) -> None:  # the build's progress: its records are read by now
                with StoreClient(server.url, signer=alice.device, log_public_key=store.keys.log.public_bytes) as c:
                    c.request_erasure(sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0))

            built = build_release(
                store.backend, store.keys, stewards, status.release_id, TableReleaseSink(table), now=NOW,
                retention_days=30, progress=alice_erases,
            )  # fmt: skip
        alias = table.aliases(status.release_id).subject(subject_digest(alice.subject))
        rows = table.read(status.release_id)
        assert alias not in rows["subject"].to_pylist()
        assert rows.num_rows == 5 * 8 and built.subjects == 5


def test_an_erasure_the_release_table_cannot_take_changes_nothing_and_says_retry(tmp_path: Path) -> None:
    """The release table's files cannot be rewritten (chattr +i: even root cannot write there): the erasure
    is refused as unfinished (503, retried by the agent), the store keeps everything; once the folder is
    writable again, the same request erases."""
    import shutil
    import subprocess

    from devkit.components import require
    from kit.store_client import RetryPolicy, StoreClient
    from protocol.store_errors import StoreError
    from store.app import create_app
    from store.releases.governance_sink import TableReleaseSink, release_table_eraser
    from store.server import ThreadedServer

    require(shutil.which("chattr") is not None, "chattr", "apt-get install e2fsprogs; run as root")
    with running_store("dir", tmp_path) as store:
        table, agents, _, status = _approved_table_release(store, "dir", tmp_path, SigningKey.generate(), 5)
        build_release(
            store.backend, store.keys, store.settings.stewards, status.release_id, TableReleaseSink(table),
            now=NOW, retention_days=30,
        )  # fmt: skip
        alice = agents[0]
        subject = subject_digest(alice.subject)
        alias = table.aliases(status.release_id).subject(subject)
        folders = [p for p in Path(table.location).rglob("*") if p.is_dir()]
        request = sign_erasure(alice.device, uuid.uuid4().hex, alice.subject, created=T0)
        app = create_app(store.backend, store.keys, store.settings, erase_from_releases=release_table_eraser(table))
        with ThreadedServer(app) as server:
            client = StoreClient(
                server.url, signer=alice.device, log_public_key=store.keys.log.public_bytes,
                retry=RetryPolicy(attempts=1),
            )  # fmt: skip
            with client as c:
                subprocess.run(["chattr", "+i", *map(str, folders)], check=True)
                try:
                    with pytest.raises(StoreError) as refused:
                        c.request_erasure(request)
                finally:
                    subprocess.run(["chattr", "-i", *map(str, folders)], check=True)
                assert refused.value.code == "erasure_unfinished" and "retry" in refused.value.message
                assert alias in table.read(status.release_id)["subject"].to_pylist()
                with store.backend.transaction() as tx:  # nothing changed in the store: the key is there
                    assert tx.get_wrapped_key(subject)[0] is not None and tx.get_erasure(request.request_id) is None
                receipt = c.request_erasure(request)  # the agent's retry, the folder writable again
        assert receipt.log.entry.body["releases_rewritten"] == 1
        assert alias not in table.read(status.release_id)["subject"].to_pylist()
