"""Batch manifest version 2 names no device key id, so nothing a steward receives does (issue 16 §2).

A device key id is what IT's fleet view lists per computer; a steward who saw it beside a subject
pseudonym would know which computer's employee consented. New agents send version-2 manifests; a
version-1 manifest from an older agent is still accepted, hashed as sent and approvable, and a steward's
tools withhold its ``device_kid`` while checking the hash over the manifest as received. Real store on
both backends, the real CLI, the real page's routes, the store API's bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from admin.access import shown_manifest_digest
from admin.review_page import StewardPage
from admin.steward_cmd import steward
from devkit.store_kit import Agent, Harness, backend_kind, running_store
from kit.web.server import Request
from protocol import manifest_digest
from protocol.keyfile import write_key_file
from protocol.review_set_api import day_of
from protocol.store_errors import Forbidden, NotFound, StoreError

__all__ = ["backend_kind"]


def _steward_outputs(live: Harness, tmp_path: Path, batch_ids: list[str], day: str) -> dict[str, str]:
    """Everything a steward receives about the pending batches: API bytes, CLI text and JSON, page HTML."""
    signer = live.stewards.signers[0]
    key_file = tmp_path / "steward.key"
    if not key_file.exists():
        write_key_file(key_file, "ed25519", signer.private_bytes())
    common = ["--key-file", str(key_file), "--store-url", live.url]

    def cli(*args: str) -> str:
        result = CliRunner().invoke(steward, [*args, *common], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = {"queue": cli("queue"), "queue --json": cli("queue", "--json"), "set show": cli("set", "show", day)}
    set_id = re.search(r"set approve ([0-9a-f]{32})", out["set show"]).group(1)  # type: ignore[union-attr]
    with live.steward_client(signer) as client:  # the store API's answers, as received
        out["api queue"] = json.dumps(client._request("GET", "/v1/steward/queue"))
        out["api set groups"] = json.dumps(client._request("GET", "/v1/steward/review-sets/groups"))
        out["api set"] = json.dumps(client._request("GET", f"/v1/steward/review-sets/{set_id}"))
        for batch_id in batch_ids:
            out[f"api batch {batch_id}"] = json.dumps(client._request("GET", f"/v1/steward/batches/{batch_id}"))
    page = StewardPage(lambda: live.steward_client(signer), signer, shown_manifest_digest)
    out["page queue"] = page.handle(Request("GET", "/", {})).body.decode()
    out["page set"] = page.handle(Request("GET", f"/set/{set_id}", {})).body.decode()
    for batch_id in batch_ids:
        out[f"show {batch_id}"] = cli("show", batch_id)
        out[f"show --json {batch_id}"] = cli("show", batch_id, "--json")
        out[f"page batch {batch_id}"] = page.handle(Request("GET", f"/batch/{batch_id}", {})).body.decode()
    return out


def test_nothing_a_steward_receives_about_version_2_manifests_names_a_device_key_id(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    with running_store(backend_kind, tmp_path / "store") as live:
        agents = [Agent(), Agent()]
        manifests = []
        for agent in agents:
            live.enroll(agent)
            manifest, _ = agent.next_batch()
            assert manifest.v == 2 and "device_kid" not in manifest.model_dump()
            with live.client(agent) as client:
                client.submit_manifest(manifest)
            manifests.append(manifest)
        ids = [m.batch_id for m in manifests]
        outputs = _steward_outputs(live, tmp_path, ids, day_of(manifests[0].period_start))
    for name, text in outputs.items():
        for agent in agents:
            assert agent.device.kid not in text, f"{name} names a device key id"
    for manifest, agent in zip(manifests, agents, strict=True):
        shown = json.loads(outputs[f"show --json {manifest.batch_id}"])
        assert shown["manifest"]["subject"] == agent.subject and shown["withheld"] == []
        assert shown["recomputed_manifest_sha256"] == manifest_digest(manifest) == shown["status"]["manifest_sha256"]
        api = json.loads(outputs[f"api batch {manifest.batch_id}"])
        assert api["manifest"]["v"] == 2 and "device_kid" not in api["manifest"]


def test_a_version_1_manifest_from_an_older_agent_is_accepted_shown_without_its_kid_and_approvable(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    with running_store(backend_kind, tmp_path / "store") as live:
        older, newer = Agent(), Agent()
        live.enroll(older)
        live.enroll(newer)
        old_manifest, old_payload = older.next_batch(version=1)
        new_manifest, _ = newer.next_batch()
        assert old_manifest.v == 1 and old_manifest.device_kid == older.device.kid  # type: ignore[union-attr]
        for agent, manifest in ((older, old_manifest), (newer, new_manifest)):
            with live.client(agent) as client:
                status = client.submit_manifest(manifest)
            assert status.manifest_sha256 == manifest_digest(manifest)  # hashed as sent, kid included
        ids = [old_manifest.batch_id, new_manifest.batch_id]
        outputs = _steward_outputs(live, tmp_path, ids, day_of(old_manifest.period_start))
        # The store API still carries a version-1 manifest whole: the steward's tool must check its hash.
        assert older.device.kid in outputs[f"api batch {old_manifest.batch_id}"]
        key_file = tmp_path / "steward.key"
        for signer in live.stewards.signers[: live.stewards.required]:  # approved with the real CLI
            write_key_file(key_file.with_name(signer.kid), "ed25519", signer.private_bytes())
            approved = CliRunner().invoke(
                steward,
                [
                    "approve",
                    old_manifest.batch_id,
                    "--key-file",
                    str(key_file.with_name(signer.kid)),
                    "--store-url",
                    live.url,
                ],  # fmt: skip
                catch_exceptions=False,
            )
            assert approved.exit_code == 0, approved.output
        sealed = older.seal(old_manifest, old_payload, live.keys.seal.public_bytes)
        with live.client(older) as client:
            receipt = client.upload(sealed)
        assert receipt.entry.body["manifest_sha256"] == manifest_digest(old_manifest)
        assert live.stored()[0] == 1
    for name, text in outputs.items():
        if name.startswith("api "):
            continue  # the store's own answers: only version-2 manifests leave the kid out there
        for agent in (older, newer):
            assert agent.device.kid not in text, f"{name} names a device key id"
    shown = json.loads(outputs[f"show --json {old_manifest.batch_id}"])
    assert shown["withheld"] == ["manifest.device_kid"] and "device_kid" not in shown["manifest"]
    assert shown["recomputed_manifest_sha256"] == manifest_digest(old_manifest) == shown["status"]["manifest_sha256"]
    assert shown["manifest"]["v"] == 1
    text = outputs[f"show {old_manifest.batch_id}"]
    assert "withheld" in text and "device key id" in text and manifest_digest(old_manifest) in text


def test_a_version_2_manifest_is_stored_only_from_the_device_whose_header_signs_it(
    home: Path, tmp_path: Path, backend_kind: str
) -> None:
    """Another device can neither take over a submitted manifest nor ship one it submitted first."""
    with running_store(backend_kind, tmp_path / "store") as live:
        owner, other, thief = Agent(), Agent(), Agent()
        for agent in (owner, other, thief):
            live.enroll(agent)
        manifest, payload = owner.next_batch()
        with live.client(owner) as client:
            client.submit_manifest(manifest)
        with live.client(other) as client, pytest.raises(StoreError) as refused:
            client.submit_manifest(manifest)  # the same manifest from another device
        assert refused.value.code in ("batch_id_reused", "subject_not_yours")
        live.approve(manifest)
        sealed = owner.seal(manifest, payload, live.keys.seal.public_bytes)
        with live.client(other) as client, pytest.raises(Forbidden):
            client.upload(sealed)  # the owner's signed upload, sent by another device

        # A device that somehow submits another's manifest first gets nothing stored under either key.
        stolen, stolen_payload = Agent(subject="subj-" + "ab" * 8).next_batch()
        with live.client(thief) as client:
            client.submit_manifest(stolen)  # the store cannot tell: it binds the batch to the sender
        live.approve(stolen)
        victim = Agent(device=owner.device, subject=stolen.subject)
        signed_by_victim = victim.seal(stolen, stolen_payload, live.keys.seal.public_bytes)
        with live.client(owner) as client, pytest.raises(NotFound):
            client.upload(signed_by_victim)  # the batch is the thief's at the store, not the signer's
        with live.client(thief) as client, pytest.raises(Forbidden):
            client.upload(signed_by_victim)  # the header names the victim's key, not the sender's
        with live.client(owner) as client:
            client.upload(sealed)  # the owner's own batch still ships
        assert live.stored()[0] == 1
