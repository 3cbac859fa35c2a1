"""A signed head that cannot be written never blocks a withdrawal, and never hides one (issue 14, section 4).

The key folder is made unwritable for real (``chattr +i`` as root, where file modes do not bind; a
plain ``chmod`` otherwise), the CLI runs for real (CliRunner), the page is the one the agent serves
(raw HTTP with a session) and the agent is a real subprocess on a synthetic input source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from agent.cli.main import cli
from agent.web.launch import start_employee_page, stop_employee_page
from devkit.components import require
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env
from tests.vault.tampering import edit_around_triggers
from vault.ledger_head import read_head
from vault.paths import Layout
from vault.vault import Vault


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` cannot gain or replace a file until the block ends."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        require(chattr is not None, "chattr as root", "apt-get install e2fsprogs")
        probe = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if probe.returncode != 0:
            require(False, "chattr +i on this filesystem", probe.stderr.strip() or "unsupported")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True, capture_output=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(mode)


def _status() -> dict[str, object]:
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.output)
    return report


def _doctor_head_check() -> dict[str, str]:
    doctor = run("doctor", "--json")
    checks = json.loads(doctor.output.split("\nError")[0])
    check: dict[str, str] = next(c for c in checks if c["check"] == "ledger head")
    return check


def test_a_withdrawal_the_head_cannot_cover_is_recorded_and_shown_as_lagging(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    layout = Layout(home)
    with unwritable(layout.key_dir):
        revoked = run("consent", "revoke", "keyboard")
        assert revoked.exit_code == 0, revoked.output  # withdrawing always works

        report = _status()
        ledger = report["ledger"]
        assert isinstance(ledger, dict) and ledger["state"] == "lagging", ledger
        assert "withdrawal" in ledger["message"] and "consentry doctor" in ledger["message"]
        categories = report["categories"]
        assert isinstance(categories, dict)
        assert categories["keyboard"]["consent"] == "revoked" and categories["mouse"]["consent"] == "granted"
        text = run("status").output
        assert "Ledger: SIGNED HEAD BEHIND" in text

        check = _doctor_head_check()
        assert check["result"] == "FAIL" and "signed ledger head behind" in check["detail"]

        # Nothing widens until the head catches up: a grant needs a head that can be written.
        refused = run("consent", "grant", "apps", "--yes")
        assert refused.exit_code == 1 and "signed head could not be written" in refused.output
        assert "Traceback" not in refused.output
    assert (home / "ledger-head.pending").exists()


def test_deleting_a_withdrawal_the_head_lags_is_caught(home: Path) -> None:
    """Before: the head stayed at the grant, so deleting the revoke left a ledger that matched it."""
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    layout = Layout(home)
    with unwritable(layout.key_dir):
        assert run("consent", "revoke", "keyboard").exit_code == 0
    edit_around_triggers(layout, "DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)")

    report = _status()
    keyboard = report["categories"]["keyboard"]  # type: ignore[index]
    assert keyboard["consent"] != "granted" and "rolled back" in str(keyboard["reason"])
    assert "Ledger: ROLLED BACK" in run("status").output
    assert _doctor_head_check()["result"] == "FAIL"
    verify = run("ledger", "verify")
    assert verify.exit_code == 1 and "withdrawal recorded as entry" in verify.output


def test_the_next_signed_act_catches_the_head_up(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    layout = Layout(home)
    with unwritable(layout.key_dir):
        assert run("consent", "revoke", "keyboard").exit_code == 0
    assert run("consent", "revoke", "mouse").exit_code == 0  # the key folder is writable again
    assert _status()["ledger"]["state"] == "ok"  # type: ignore[index]
    assert _doctor_head_check()["result"] == "ok"
    assert not (home / "ledger-head.pending").exists()
    with Vault.open(layout) as vault:
        assert getattr(read_head(vault.head_file), "seq", None) == vault.ledger.head()[0]


def test_the_page_shows_a_lagging_head(home: Path, policy_path: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    layout = Layout(home)
    server = start_employee_page(layout, policy_path)
    assert server is not None
    try:
        with unwritable(layout.key_dir):
            assert run("consent", "revoke", "keyboard").exit_code == 0
            with httpx.Client(base_url=server.url) as client:
                assert client.get("/", params={"token": server.token}).status_code == 200  # the session
                page = client.get("/")
        assert page.status_code == 200
        assert "signed ledger head behind" in page.text and "head behind" in page.text
    finally:
        stop_employee_page(layout, server)


def test_the_running_agent_shows_the_lag_and_catches_the_head_up(home: Path, policy_path: Path) -> None:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    layout = Layout(home)
    agent = AgentProcess(layout, agent_env(home, policy_path, None), "--replay", "synthetic:seed=5,key_rate=20")
    try:
        agent.wait_state("keyboard", "capturing")
        with unwritable(layout.key_dir):
            assert run("consent", "revoke", "keyboard").exit_code == 0
            status = agent.wait_status(
                lambda s: (s.get("ledger_head") or {}).get("state") == "lagging", "the agent to report the lag"
            )
            assert status["categories"]["keyboard"]["state"] == "revoked"
            assert status["categories"]["mouse"]["state"] == "capturing"  # the grant the head covers stands
        # Writable again: the agent signs the head over the withdrawal by itself.
        agent.wait_status(lambda s: (s.get("ledger_head") or {}).get("state") == "ok", "the head to catch up")
        assert _status()["ledger"]["state"] == "ok"  # type: ignore[index]
    finally:
        assert agent.stop() == 0
    with Vault.open(layout) as vault:
        assert getattr(read_head(vault.head_file), "seq", None) == vault.ledger.head()[0]
