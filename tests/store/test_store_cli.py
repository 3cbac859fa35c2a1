"""``consentry steward`` and ``consentry store`` commands, run for real against a live store."""

from __future__ import annotations

import getpass
import json
import re
import stat
from pathlib import Path

from click.testing import CliRunner

from admin.steward_cmd import steward
from admin.store_cmd import store
from devkit.store_kit import Agent, SigningKey, Stewards, running_store
from protocol import b64encode
from protocol.keyfile import read_key_file


def _run(group, args: list[str]):
    return CliRunner().invoke(group, args, catch_exceptions=False)


def test_steward_init_writes_a_private_0600_key_and_prints_the_public_key(home: Path) -> None:
    result = _run(steward, ["init", "--name", "ana", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    key_file = home / "steward" / "steward-ed25519.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert out["public_key"] == b64encode(SigningKey(read_key_file(key_file, "ed25519")).public_bytes)
    again = _run(steward, ["init"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_steward_reviews_and_decides_through_the_cli(home: Path, tmp_path: Path) -> None:
    assert _run(steward, ["init", "--key-file", str(tmp_path / "a.key")]).exit_code == 0
    assert _run(steward, ["init", "--key-file", str(tmp_path / "b.key")]).exit_code == 0
    signers = [SigningKey(read_key_file(tmp_path / f"{n}.key", "ed25519")) for n in "ab"]
    with running_store("dir", tmp_path / "s", Stewards(signers, 2)) as live:
        agent = Agent()
        live.enroll(agent)
        first, _ = agent.next_batch()
        second, _ = agent.next_batch()
        with live.client(agent) as client:
            client.submit_manifest(first)
            client.submit_manifest(second)
        common = ["--store-url", live.url]
        queue = _run(steward, ["queue", "--json", "--key-file", str(tmp_path / "a.key"), *common])
        assert [i["batch_id"] for i in json.loads(queue.stdout)] == [first.batch_id, second.batch_id]
        shown = _run(steward, ["show", first.batch_id, "--key-file", str(tmp_path / "a.key"), *common])
        assert "Check schema: passed" in shown.output and "letter" not in shown.output
        # The period in UTC ISO without microseconds, never epoch seconds.
        assert re.search(r"Period: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ to \S+Z \(UTC\)", shown.output), shown.output
        assert "epoch" not in shown.output
        for name in "ab":
            ok = _run(steward, ["approve", first.batch_id, "--key-file", str(tmp_path / f"{name}.key"), *common])
            assert ok.exit_code == 0, ok.output
        assert "now approved (2/2" in ok.output
        no = _run(
            steward,
            [
                "reject",
                second.batch_id,
                "--reason",
                "too wide a period",
                "--json",
                "--key-file",
                str(tmp_path / "a.key"),
                *common,
            ],
        )
        assert json.loads(no.stdout)["state"] == "rejected"
        twice = _run(steward, ["approve", first.batch_id, "--key-file", str(tmp_path / "a.key"), *common])
        assert twice.exit_code == 0  # the same signed decision again is idempotent
        flip = _run(
            steward,
            [
                "reject",
                first.batch_id,
                "--reason",
                "changed my mind",
                "--key-file",
                str(tmp_path / "a.key"),
                *common,
            ],
        )
        assert flip.exit_code == 1 and "already_decided" in flip.output
        stranger = tmp_path / "c.key"
        _run(steward, ["init", "--key-file", str(stranger)])
        refused = _run(steward, ["queue", "--key-file", str(stranger), *common])
        assert refused.exit_code == 1 and "not_a_steward" in refused.output
    missing = _run(steward, ["queue", "--key-file", str(tmp_path / "nope.key"), "--store-url", "http://127.0.0.1:9"])
    assert missing.exit_code == 1 and "consentry steward init" in missing.output


def test_store_keygen_token_export_and_verify_log(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "store"
    keygen = _run(store, ["keygen", "--data", str(data), "--json"])
    assert json.loads(keygen.output)["created"] is True
    token = _run(store, ["token", "--data", str(data), "--json"])
    assert len(json.loads(token.output)["token"]) >= 40
    assert _run(store, ["token", "--backend", "postgres", "--data", str(data)]).exit_code == 2  # needs --dsn

    # --full reads the log's entries, which only devices and stewards may: it signs with a steward key.
    key_file = tmp_path / "steward.key"
    assert _run(steward, ["init", "--key-file", str(key_file)]).exit_code == 0
    stewards = Stewards([SigningKey(read_key_file(key_file, "ed25519")), SigningKey.generate()], 2)
    with running_store("dir", tmp_path / "live", stewards) as live:
        agent = Agent()
        live.enroll(agent)
        with live.client(agent) as client:
            client.upload(live.shippable(agent, 9)[1])
        log_key = b64encode(live.keys.log.public_bytes)
        state = tmp_path / "head.json"
        args = [
            "verify-log",
            "--store-url",
            live.url,
            "--log-key",
            log_key,
            "--state",
            str(state),
            "--json",
            "--full",
            "--key-file",
            str(key_file),
        ]
        stranger = tmp_path / "stranger.key"
        _run(steward, ["init", "--key-file", str(stranger)])
        refused = _run(store, [*args[:-1], str(stranger)])
        assert refused.exit_code == 1 and "not_a_steward" in refused.output
        first = json.loads(_run(store, args).output)
        assert first["signature"] == "ok" and first["entries_checked"] == first["size"] == 3
        with live.client(agent) as client:
            client.upload(live.shippable(agent, 9)[1])
        second = json.loads(_run(store, args).output)
        assert second["consistent_with_size"] == 3 and second["size"] == 6
        wrong = _run(store, ["verify-log", "--store-url", live.url, "--log-key", b64encode(bytes(32))])
        assert wrong.exit_code == 1 and "does NOT verify" in wrong.output


def test_store_export_is_break_glass_needing_a_reason_and_logs_who_ran_it(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "store"
    _run(store, ["keygen", "--data", str(data)])
    out = tmp_path / "out"
    refused = _run(store, ["export", "--data", str(data), "--json", str(out)])
    assert refused.exit_code == 2 and "break-glass" in refused.output and "--reason" in refused.output
    assert not out.exists()  # refused before anything was written
    reason = "subject access request 42"
    result = _run(store, ["export", "--data", str(data), "--reason", reason, "--json", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["batches"] == 0 and (out / "manifest.json").exists() and (out / "DATASHEET.md").exists()
    logged = json.loads((out / "export_receipt.json").read_text())["entry"]["body"]["break_glass"]
    assert logged == {"operator": getpass.getuser(), "reason": reason}
    again = _run(store, ["export", "--data", str(data), "--reason", reason, str(out)])
    assert again.exit_code == 1 and "not empty" in again.output
