"""``consentry steward set`` and every privacy check's detail in ``consentry steward show``, for real."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from admin.steward_cmd import steward
from devkit.store_kit import Agent, Stewards, running_store
from protocol.keyfile import write_key_file


def _run(args: list[str]):
    return CliRunner().invoke(steward, args, catch_exceptions=False)


def test_steward_show_gives_every_check_what_was_checked_and_its_figure(home: Path, tmp_path: Path) -> None:
    stewards = Stewards.make(1, 1)
    key = tmp_path / "s.key"
    write_key_file(key, "ed25519", stewards.signers[0].private_bytes())
    with running_store("dir", tmp_path / "s", stewards) as live:
        agent = Agent()
        live.enroll(agent)
        manifest, _ = agent.next_batch(12)
        with live.client(agent) as client:
            client.submit_manifest(manifest)
        shown = _run(["show", manifest.batch_id, "--key-file", str(key), "--store-url", live.url]).output
    checks = [line for line in shown.splitlines() if line.startswith("Check ")]
    assert len(checks) == 5, shown
    for line in checks:  # never a bare "passed": what was checked, then a figure
        assert re.search(r"Check \w+: passed: .{20,}: .*\d", line), line
    assert "Check schema: passed: records outside the window schema" in shown and ": 0 of 12" in shown
    assert "counts_match: passed: per-category record counts compared with the manifest's: equal (" in shown


def test_set_show_then_approve_signs_the_root_shown_for_every_batch(home: Path, tmp_path: Path) -> None:
    stewards = Stewards.make(1, 1)
    key = tmp_path / "s.key"
    write_key_file(key, "ed25519", stewards.signers[0].private_bytes())
    with running_store("dir", tmp_path / "s", stewards) as live:
        agents = [Agent() for _ in range(4)]
        ids = []
        for agent in agents:
            live.enroll(agent)
            for n in (9, 12, 60 if agent is agents[-1] else 12):  # one batch far larger than the rest
                manifest, _ = agent.next_batch(n)
                with live.client(agent) as client:
                    client.submit_manifest(manifest)
                ids.append(manifest.batch_id)
        common = ["--key-file", str(key), "--store-url", live.url]
        listed = _run(["set", "list", *common]).output
        assert "2023-11-14     12 batches  notices consentry-notice v1" in listed, listed
        shown = _run(["set", "show", "2023-11-14", *common])
        assert shown.exit_code == 0, shown.output
        out = shown.output
        assert "12 batches of 2023-11-14" in out and "previous day: no batches" in out
        assert f"Deviating batches: 1\n  {ids[-1]}: apps 20 records, outside 0–7 for this set;" in out, out
        assert "Sampled for a closer look (5, drawn on this machine at random)" in out
        assert "check consent_coverage: passed:" in out
        set_id, root = re.search(r"set approve ([0-9a-f]{32}) --root ([0-9a-f]{64})", out).groups()
        wrong = _run(["set", "approve", set_id, "--root", "ab" * 32, *common])
        assert wrong.exit_code == 1 and "nothing was signed" in wrong.output
        (late,) = [Agent()]
        live.enroll(late)
        manifest, _ = late.next_batch()
        with live.client(late) as client:
            client.submit_manifest(manifest)  # after the set was shown: not in it
        done = _run(["set", "approve", set_id, "--root", root, *common])
        assert done.exit_code == 0, done.output
        assert "counts for 12 batches; 12 have all the approvals they need" in done.output
        with live.steward_client(stewards.signers[0]) as client:
            assert {client.review(i).status.state for i in ids} == {"approved"}
            assert client.review(manifest.batch_id).status.state == "review"


def test_set_reject_signs_the_root_shown_with_its_reason_and_refuses_without_one(home: Path, tmp_path: Path) -> None:
    stewards = Stewards.make(1, 1)
    key = tmp_path / "s.key"
    write_key_file(key, "ed25519", stewards.signers[0].private_bytes())
    with running_store("dir", tmp_path / "s", stewards) as live:
        ids = []
        for _ in range(3):
            agent = Agent()
            live.enroll(agent)
            manifest, _ = agent.next_batch()
            with live.client(agent) as client:
                client.submit_manifest(manifest)
            ids.append(manifest.batch_id)
        common = ["--key-file", str(key), "--store-url", live.url]
        out = _run(["set", "show", "2023-11-14", *common]).output
        set_id, root = re.search(r"set reject ([0-9a-f]{32}) --root ([0-9a-f]{64}) --reason", out).groups()
        missing = _run(["set", "reject", set_id, "--root", root, *common])
        assert missing.exit_code == 2 and "--reason" in missing.output
        blank = _run(["set", "reject", set_id, "--root", root, "--reason", "  ", *common])
        assert blank.exit_code == 2 and "a rejection needs a reason; nothing was signed" in blank.output
        wrong = _run(["set", "reject", set_id, "--root", "ab" * 32, "--reason", "too many apps", *common])
        assert wrong.exit_code == 1 and "nothing was signed" in wrong.output
        with live.steward_client(stewards.signers[0]) as client:
            assert {client.review(i).status.state for i in ids} == {"review"}
        done = _run(["set", "reject", set_id, "--root", root, "--reason", "too many apps", *common])
        assert done.exit_code == 0, done.output
        assert "Signed the set's rejection: 3 batches are now rejected." in done.output
        again = _run(["set", "reject", set_id, "--root", root, "--reason", "too many apps", *common])
        assert again.exit_code == 1 and "already_decided" in again.output and "nothing changed" in again.output
        with live.steward_client(stewards.signers[0]) as client:
            assert {client.review(i).status.state for i in ids} == {"rejected"}
            assert {client.review(i).status.rejection_reasons for i in ids} == {("too many apps",)}
        again_shown = _run(["set", "show", set_id, *common]).output
        assert re.search(
            r"Rejected by steward key .{12}… at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: too many apps", again_shown
        )
        shown = _run(["show", ids[0], *common]).output
        assert "Rejected: too many apps" in shown and ": rejected," in shown, shown
