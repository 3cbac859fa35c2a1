"""The employee CLI, run for real (click's CliRunner) against real vault files in a temporary home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from devkit.factories import grant, mouse_window, receipt_for
from protocol.categories import Category
from vault import batches as batch_ops
from vault import outbox
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_everything_starts_off_and_nothing_is_created(home: Path) -> None:
    result = run("consent", "show", "--json")
    assert result.exit_code == 0
    assert {row["state"] for row in json.loads(result.output)} == {"not_granted"}
    assert not home.exists()


def test_grant_shows_the_notice_and_needs_an_explicit_yes(home: Path) -> None:
    declined = run("consent", "grant", "keyboard", input="n\n")
    assert declined.exit_code == 0 and "What is never kept" in declined.output and "Not granted" in declined.output
    assert json.loads(run("consent", "show", "--json").output)[0]["state"] == "not_granted"
    accepted = run("consent", "grant", "keyboard", input="y\n")
    assert accepted.exit_code == 0 and "keyboard: granted" in accepted.output
    with Vault.open(Layout(home)) as vault:
        (entry,) = vault.ledger.entries(("grant",))
        assert entry.body["confirmation"] == "interactive-prompt"


def test_yes_flag_is_recorded_as_such(home: Path) -> None:
    assert run("consent", "grant", "mouse", "apps", "--yes").exit_code == 0
    with Vault.open(Layout(home)) as vault:
        assert {e.body["confirmation"] for e in vault.ledger.entries(("grant",))} == {"yes-flag"}
    states = {r["category"]: r["state"] for r in json.loads(run("consent", "show", "--json").output)}
    assert states == {"keyboard": "not_granted", "mouse": "granted", "apps": "granted", "files": "not_granted"}


def test_revoke_takes_no_more_steps_than_grant(home: Path) -> None:
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    result = run("consent", "revoke", "mouse")
    assert result.exit_code == 0 and "mouse: withdrawn" in result.output
    states = {r["category"]: r["state"] for r in json.loads(run("consent", "show", "--json").output)}
    assert states["mouse"] == "revoked"


def test_revoke_with_erase_shreds_the_data(home: Path) -> None:
    from datetime import UTC, datetime

    from devkit.factories import mouse_window

    run("consent", "grant", "mouse", "--yes")
    with Vault.open(Layout(home)) as vault:
        rid = receipt_for(
            vault.consent(__import__("vault").MachinePolicy()),
            __import__("protocol.categories").categories.Category.MOUSE,
        )
        vault.write_windows([mouse_window(int(datetime.now(UTC).timestamp()) // 60 * 60, rid)])
    assert json.loads(run("mydata", "--json").output)["records"]
    result = run("consent", "revoke", "mouse", "--erase")
    assert result.exit_code == 0 and "1 data key destroyed" in result.output
    assert json.loads(run("mydata", "--json").output)["records"] == []


def test_files_needs_a_folder_and_keeps_it_local(home: Path, tmp_path: Path) -> None:
    assert run("consent", "grant", "files", "--yes").exit_code == 2
    folder = tmp_path / "projects"
    folder.mkdir()
    assert run("consent", "grant", "files", "--yes", "--folder", str(folder)).exit_code == 0
    assert json.loads(run("mydata", "--json").output)["watched_folders"] == [str(folder.resolve())]


def test_unknown_category_is_a_usage_error(home: Path) -> None:
    result = CliRunner().invoke(cli, ["consent", "grant", "screen", "--yes"])
    assert result.exit_code == 2 and "valid categories: keyboard, mouse, apps, files" in result.output


def test_policy_forbidden_category_cannot_be_granted(home: Path, policy_path: Path) -> None:
    policy_path.write_text('allowed_categories = ["mouse"]\n')
    result = CliRunner().invoke(cli, ["consent", "grant", "keyboard", "--yes"])
    assert result.exit_code == 1 and "does not offer 'keyboard'" in result.output
    assert not home.exists()


def test_invalid_policy_is_a_clear_error(home: Path, policy_path: Path) -> None:
    policy_path.write_text("retention_days = -1\n")
    result = CliRunner().invoke(cli, ["consent", "grant", "mouse", "--yes"])
    assert result.exit_code == 1 and "retention_days" in result.output and str(policy_path) in result.output
    assert CliRunner().invoke(cli, ["policy", "validate", str(policy_path)]).exit_code == 1


def test_pause_and_resume(home: Path) -> None:
    run("consent", "grant", "mouse", "--yes")
    assert "paused until" in run("pause", "--for", "1h30m").output
    status = json.loads(run("status", "--json").output)
    assert status["paused_until"] is not None
    assert run("resume").output.strip() == "Capture resumed."
    assert json.loads(run("status", "--json").output)["paused_until"] is None
    bad = CliRunner().invoke(cli, ["pause", "--for", "soon"])
    assert bad.exit_code == 2 and "30m" in bad.output


def test_status_reports_each_category(home: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    status = json.loads(run("status", "--json").output)
    assert status["categories"]["keyboard"]["consent"] == "granted"
    assert status["categories"]["mouse"]["consent"] == "not_granted"
    assert status["agent"]["running"] is False and status["policy"]["state"] == "ok"
    keyboard = status["categories"]["keyboard"]
    assert keyboard["capture"] == "agent not running" and keyboard["since"].endswith("Z")
    assert status["categories"]["mouse"]["capture"] == "off"
    assert status["policy"] == {"state": "ok", "sha256": MachinePolicy().digest(), "exists": False}
    assert status["ledger"] == {"ok": True, "state": "ok", "message": None}
    assert status["release"] == {"batches": {}, "problems": [], "erasures_pending": 0}
    assert status["records_today"] == 0 and status["paused_until"] is None and status["settings_problems"] == []


def test_erase_all_withdraws_and_shreds(home: Path) -> None:
    run("consent", "grant", "keyboard", "mouse", "--yes")
    assert run("erase", "--all", "--yes").exit_code == 0
    states = {r["state"] for r in json.loads(run("consent", "show", "--json").output)}
    assert states == {"revoked", "not_granted"}
    assert CliRunner().invoke(cli, ["erase", "--yes"]).exit_code == 2


def test_erase_all_force_recovers_from_a_lost_key(home: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    Layout(home).kek_file.unlink()
    failed = CliRunner().invoke(cli, ["ledger", "verify"])
    assert failed.exit_code == 1 and "erase --all --force" in failed.output
    assert run("erase", "--all", "--yes", "--force").exit_code == 0
    assert not Layout(home).vault_db.exists()


def test_ledger_verify_passes_then_catches_tampering(home: Path) -> None:
    import sqlite3

    run("consent", "grant", "keyboard", "--yes")
    run("consent", "revoke", "keyboard")
    ok = run("ledger", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["ok"] is True
    conn = sqlite3.connect(Layout(home).vault_db)
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("UPDATE ledger SET body = replace(body, 'yes-flag', 'interactive-prompt') WHERE kind = 'grant'")
    conn.commit()
    conn.close()
    broken = CliRunner().invoke(cli, ["ledger", "verify"])
    assert broken.exit_code == 1 and "ledger broken at entry 2" in broken.output


def test_corrupted_vault_is_a_clear_error_not_a_traceback(home: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    db = Layout(home).vault_db
    db.write_bytes(os.urandom(db.stat().st_size))
    result = CliRunner().invoke(cli, ["mydata"])
    assert result.exit_code == 1 and "Nothing was changed" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_doctor_reports_all_ok_on_a_healthy_vault(home: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    result = run("doctor", "--json")
    assert result.exit_code == 0 and {c["result"] for c in json.loads(result.output)} == {"ok"}


def test_every_read_command_has_json(home: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    for args in (
        ["consent", "show"],
        ["status"],
        ["mydata"],
        ["ledger", "show"],
        ["ledger", "verify"],
        ["policy", "show"],
        ["doctor"],
    ):
        result = run(*args, "--json")
        assert result.exit_code == 0, args
        json.loads(result.output)


def test_console_script_runs_in_a_subprocess(home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "consent", "show"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=True,
    )
    assert "keyboard" in out.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--version"], ["consentry, version "]),
        (["--help"], ["consent", "status", "pause", "resume", "mydata", "erase", "batches", "store", "steward"]),
        (["consent", "--help"], ["grant", "revoke", "show", "All are off until you grant them"]),
    ],
)
def test_help_and_version_say_what_there_is(args: list[str], expected: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0
    missing = [word for word in expected if word not in result.output]
    assert not missing, f"{args} does not mention {missing}:\n{result.output}"


def test_employee_exclusion_list_is_kept_and_only_its_size_is_in_the_ledger(home: Path) -> None:
    run("consent", "grant", "mouse", "--yes")
    assert run("exclude", "add", "MyBank", "hr-portal").exit_code == 0
    listed = json.loads(run("exclude", "list", "--json").output)
    assert listed["employee"] == ["hr-portal", "mybank"] and "keepassxc" in listed["policy"]
    assert run("exclude", "remove", "mybank").exit_code == 0
    assert json.loads(run("exclude", "list", "--json").output)["employee"] == ["hr-portal"]
    with Vault.open(Layout(home)) as vault:
        entries = list(vault.ledger.entries(("excluded-apps-changed",)))
        assert [e.body["count"] for e in entries] == [2, 1]
    raw = b"".join(p.read_bytes() for p in Layout(home).home.glob("vault.sqlite3*"))
    assert b"mybank" not in raw.lower()


def test_status_with_an_invalid_policy_shows_consent_and_stopped_capture(home: Path, policy_path: Path) -> None:
    run("consent", "grant", "keyboard", "--yes")
    policy_path.write_text("retention_days = 0\n")
    report = json.loads(run("status", "--json").output)
    assert report["policy"]["state"] == "invalid" and "retention_days" in report["policy"]["message"]
    assert report["categories"]["keyboard"]["consent"] == "granted"
    assert report["categories"]["keyboard"]["capture"].startswith("stopped")
    assert "INVALID" in run("status").output


def test_an_invalid_policy_never_blocks_withdrawing(home: Path, policy_path: Path) -> None:
    run("consent", "grant", "keyboard", "mouse", "--yes")
    run("pause")
    policy_path.write_text("retention_days = 0\n")
    assert CliRunner().invoke(cli, ["consent", "grant", "apps", "--yes"]).exit_code == 1  # granting: refused
    revoked = CliRunner().invoke(cli, ["consent", "revoke", "keyboard", "--erase"])
    assert revoked.exit_code == 0 and "keyboard: withdrawn" in revoked.output
    assert CliRunner().invoke(cli, ["resume"]).exit_code == 0
    assert CliRunner().invoke(cli, ["erase", "--all", "--yes"]).exit_code == 0
    states = {
        r["category"]: r["state"] for r in json.loads(CliRunner().invoke(cli, ["consent", "show", "--json"]).stdout)
    }
    assert states["keyboard"] == states["mouse"] == "revoked"


def test_batches_release_then_veto_change_the_held_batch(home: Path) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with Vault.open(Layout(home)) as vault:
        rid = grant(vault, Category.MOUSE, yesterday - timedelta(hours=1))
        vault.write_windows([mouse_window(int(yesterday.timestamp()), rid)])
        info = batch_ops.seal_pending(vault, MachinePolicy(), datetime.now(UTC))
    assert info is not None and info.state == "held"
    released = run("batches", "release", info.batch_id)
    assert released.output.strip() == f"Batch {info.batch_id} released for steward review."
    with Vault.open(Layout(home)) as vault:
        assert outbox.get_batch(vault, info.batch_id).state == "released"
    vetoed = run("batches", "veto", info.batch_id)
    assert vetoed.output.strip().startswith(f"Batch {info.batch_id} vetoed;")
    with Vault.open(Layout(home)) as vault:
        assert outbox.get_batch(vault, info.batch_id).state == "vetoed"
