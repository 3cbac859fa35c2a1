"""The steward's views name a batch's subject pseudonym, never the device key that sent it (issue 16 §2).

A device key id is what IT's fleet view lists per computer; if stewards saw it too, the two views
together would say which computer's employee consented. Real store, real CLI, the real page's routes.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from admin.access import shown_manifest_digest
from admin.review_page import StewardPage
from admin.steward_cmd import steward
from devkit.store_kit import T0, Agent, backend_kind, running_store
from kit.web.server import Request
from protocol.auditlog import LogEntry, subject_digest
from protocol.keyfile import write_key_file
from store.audit import DEVICE_FREE_LEAF_FORMAT, append_entry, verify_log

__all__ = ["backend_kind"]


def test_steward_queue_show_and_page_show_subjects_not_device_kids(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    with running_store(backend_kind, tmp_path) as live:
        agents = [Agent(), Agent()]
        manifests = []
        for agent in agents:
            live.enroll(agent)
            manifest, _ = agent.next_batch()
            with live.client(agent) as client:
                client.submit_manifest(manifest)
            manifests.append(manifest)
        signer = live.stewards.signers[0]
        key_file = tmp_path / "steward.key"
        write_key_file(key_file, "ed25519", signer.private_bytes())
        common = ["--key-file", str(key_file), "--store-url", live.url]
        outputs = [
            CliRunner().invoke(steward, ["queue", *common], catch_exceptions=False).output,
            CliRunner().invoke(steward, ["queue", "--json", *common], catch_exceptions=False).output,
            CliRunner().invoke(steward, ["show", manifests[0].batch_id, *common], catch_exceptions=False).output,
        ]
        page = StewardPage(lambda: live.steward_client(signer), signer, shown_manifest_digest)
        outputs.append(page.handle(Request("GET", "/", {})).body.decode())
        outputs.append(page.handle(Request("GET", f"/batch/{manifests[0].batch_id}", {})).body.decode())
    queue = json.loads(outputs[1])
    assert {item["subject"] for item in queue} == {a.subject for a in agents}
    assert agents[0].subject in outputs[2] and agents[0].subject in outputs[4]
    for text in outputs:
        for agent in agents:
            assert agent.device.kid not in text


def test_steward_log_entries_name_no_device_kid(home: Path, tmp_path: Path, backend_kind: str) -> None:
    """A stored batch and a withdrawn one: their leaves name the subject digest, never the device key id."""
    with running_store(backend_kind, tmp_path) as live:
        agent, other = Agent(), Agent()
        live.enroll(agent)
        live.enroll(other)
        _, sealed = live.shippable(agent)
        withdrawn, _ = agent.next_batch()
        with live.client(agent) as client:
            client.upload(sealed)
            client.submit_manifest(withdrawn)
            client.withdraw(withdrawn.batch_id)
        with live.steward_client(live.stewards.signers[0]) as client:
            entries = client.entries(0, client.tree_head().size)
            check = verify_log(client, live.keys.log.public_bytes, full=True)
        with live.client(agent) as mine, live.client(other) as theirs:  # device reach, without a kid in the leaf
            seen_by_agent, seen_by_other = mine.entries(0, len(entries)), theirs.entries(0, len(entries))
    assert check.entries_checked == len(entries)
    assert [e.kind for e in seen_by_agent] == [e.kind for e in entries] and seen_by_other == []
    device_free = [e for e in entries if e.kind in ("batch-stored", "withdrawal")]
    assert [e.kind for e in device_free] == ["batch-stored", "withdrawal"]
    for entry in device_free:
        assert entry.body["format"] == DEVICE_FREE_LEAF_FORMAT
        assert entry.body["subject_digest"] == subject_digest(agent.subject)
    assert not any(agent.device.kid in entry.model_dump_json() for entry in entries)


def test_first_format_leaves_still_verify_and_reach_their_device(home: Path, tmp_path: Path, backend_kind: str) -> None:
    """A log that already holds first-format leaves (device key id and sequence number) keeps verifying
    after format-2 leaves follow, and each device still reads exactly its own entries of both formats."""
    with running_store(backend_kind, tmp_path) as live:
        alice, bob = Agent(), Agent()
        stored: dict[str, str] = {}
        for agent in (alice, bob):
            live.enroll(agent)
            _, sealed = live.shippable(agent)
            with live.client(agent) as client:
                stored[agent.device.kid] = client.upload(sealed).entry.body["batch_id"]
        old_body = {"batch_id": stored[alice.device.kid], "device_kid": alice.device.kid, "seq": 1,
                    "manifest_sha256": "0" * 64, "header_sha256": "1" * 64, "records": 12}  # fmt: skip
        with live.backend.transaction() as tx:  # what a store before format 2 appended
            append_entry(tx, live.keys.log, LogEntry(v=1, kind="batch-stored", time=T0, body=old_body))
        for agent in (alice, bob):  # format-2 leaves after the old one
            _, sealed = live.shippable(agent)
            with live.client(agent) as client:
                client.upload(sealed)
        with live.steward_client(live.stewards.signers[0]) as client:
            size = client.tree_head().size
            check = verify_log(client, live.keys.log.public_bytes, full=True)
        with live.client(alice) as a, live.client(bob) as b:
            seen_by_alice, seen_by_bob = a.entries(0, size), b.entries(0, size)
    assert check.entries_checked == size
    assert old_body in [e.body for e in seen_by_alice]
    assert old_body not in [e.body for e in seen_by_bob]
    assert [e.body.get("format") for e in seen_by_alice if e.kind == "batch-stored"] == [2, None, 2]
    assert not any(alice.device.kid in e.model_dump_json() for e in seen_by_bob)
    assert sum(e.kind == "batch-stored" for e in seen_by_bob) == 2
