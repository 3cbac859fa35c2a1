"""Erasing while a real agent captures leaves a vault in which every later record is readable.

The agent runs as a real subprocess on a synthetic input source; every erasure is a real ``consentry``
process (or, for retention, a real process running the housekeeping shredder), so the agent and the
eraser share nothing but the vault file and the key store. After each erasure the readers the
employee uses must read every record written later: ``consentry mydata``, ``consentry batches seal``
and the page's "My data" view.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devkit.factories import grant as grant_in_vault
from devkit.factories import keyboard_window
from protocol.categories import Category
from protocol.timeutil import utc_day, utc_now
from tests.agent_harness import DEADLINE, SHORT_WINDOW_POLICY, AgentProcess, agent_env
from vault.paths import Layout
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 10  # SHORT_WINDOW_POLICY's window, in seconds
SYNTHETIC = ("--replay", "synthetic:seed=5,key_rate=20,move_rate=0")


def consentry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One real ``consentry`` process."""
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def ok(env: dict[str, str], *args: str) -> str:
    done = consentry(env, *args)
    assert done.returncode == 0, f"consentry {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def grant_in_force(layout: Layout, category: str = "keyboard") -> str:
    with Vault.open(layout) as vault:
        live = [rid for rid, s in vault.receipt_spans().items() if s.ended_at is None]
        return next(rid for rid in live if vault.receipt_spans()[rid].receipt.category.value == category)


def count_under(layout: Layout, receipt_id: str) -> int:
    """Records written under a grant, counted without decrypting (so a bad one is still counted)."""
    with Vault.open(layout) as vault:
        return int(vault.db.execute("SELECT COUNT(*) FROM records WHERE receipt_id = ?", (receipt_id,)).fetchone()[0])


def wait_written_under(
    layout: Layout, receipt_id: str, at_least: int = 1, timeout: float = 3 * WINDOW + DEADLINE
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_under(layout, receipt_id) >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"no record was written under grant {receipt_id} within {timeout:.0f} s")


def assert_every_record_readable(layout: Layout, env: dict[str, str]) -> int:
    """mydata, the page's My data view and sealing a batch all read every stored record."""
    from agent.web.mydata_view import mydata_body

    with Vault.open(layout) as vault:
        stored = vault.count_windows()
        assert len(vault.read_windows()) == stored  # raises InvalidRecord if any record does not authenticate
        page = mydata_body(vault, None, ZoneInfo("UTC"), utc_now().date())
        assert "failed to authenticate" not in page
    shown = json.loads(ok(env, "mydata", "--json"))
    assert len(shown["records"]) >= stored
    ok(env, "batches", "seal", "--json")
    return stored


@pytest.fixture
def running(layout: Layout, policy_path: Path) -> tuple[Layout, dict[str, str]]:
    policy_path.write_text(SHORT_WINDOW_POLICY + "retention_days = 1\n")
    return layout, agent_env(layout.home, policy_path, None)


def _seed_old_records(layout: Layout, policy: MachinePolicy) -> None:
    """Keyboard records from three days ago, under a grant of then (for the retention case)."""
    then = utc_now() - timedelta(days=3)
    with Vault.open(layout) as vault:
        receipt = grant_in_vault(vault, Category.KEYBOARD, then - timedelta(minutes=5), policy)
        vault.write_windows([keyboard_window(int(then.timestamp()) // 60 * 60, receipt)])


def _run_retention(env: dict[str, str]) -> None:
    """The housekeeping shredder, in its own process (as when a second agent or a chore runs it)."""
    script = (
        "import os\nfrom pathlib import Path\n"
        "from protocol.timeutil import utc_now\nfrom vault.paths import default_layout\n"
        "from vault.policy import load_policy\nfrom vault.shredding import apply_retention\n"
        "from vault.vault import Vault\n"
        "with Vault.open(default_layout(), create=False) as v:\n"
        "    print(len(apply_retention(v, load_policy(Path(os.environ['CONSENTRY_POLICY'])), utc_now())))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1  # the old day's key was shredded


ERASURES = ["erase-all", "erase-category", "erase-period", "revoke-erase", "retention"]


def _erase(kind: str, env: dict[str, str]) -> bool:
    """Do one erasure of ``kind`` in its own process; True when it ended the grant (grant again)."""
    today = utc_day(datetime.now(UTC))
    if kind == "erase-all":
        ok(env, "erase", "--all", "--yes")
        return True
    if kind == "erase-category":
        ok(env, "erase", "--category", "keyboard", "--yes")
    elif kind == "erase-period":
        ok(env, "erase", "--from", today, "--to", today, "--yes")
    elif kind == "revoke-erase":
        ok(env, "consent", "revoke", "keyboard", "--erase")
        return True
    else:
        _run_retention(env)
    return False


@pytest.mark.parametrize("kind", ERASURES)
def test_every_record_after_an_erasure_under_a_running_agent_is_readable(
    running: tuple[Layout, dict[str, str]], kind: str
) -> None:
    layout, env = running
    if kind == "retention":
        _seed_old_records(layout, load_policy(Path(env["CONSENTRY_POLICY"])))
    ok(env, "consent", "grant", "keyboard", "--yes")
    agent = AgentProcess(layout, env, *SYNTHETIC)
    try:
        agent.wait_state("keyboard", "capturing")
        wait_written_under(layout, grant_in_force(layout))  # the agent has used (and cached) its keys
        if _erase(kind, env):
            agent.wait_state("keyboard", "revoked")
            ok(env, "consent", "grant", "keyboard", "--yes")
        erased_at = time.time()
        receipt = grant_in_force(layout)
        agent.wait_state("keyboard", "capturing")
        deadline = time.monotonic() + 3 * WINDOW + DEADLINE
        while time.monotonic() < deadline:  # wait past the next window
            with Vault.open(layout) as vault:
                later = vault.db.execute("SELECT COUNT(*) FROM records WHERE start >= ?", (erased_at,)).fetchone()[0]
            if later >= 1:
                break
            time.sleep(0.2)
        wait_written_under(layout, receipt)
        assert_every_record_readable(layout, env)
        status = agent.status()
        assert status is not None and not status["storage_error"], status
        doctor = consentry(env, "doctor", "--json")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    finally:
        assert agent.stop() == 0
    # A restarted agent goes on writing where the running one left off.
    agent = AgentProcess(layout, env, *SYNTHETIC)
    try:
        agent.wait_state("keyboard", "capturing")
        before = count_under(layout, receipt)
        wait_written_under(layout, receipt, at_least=before + 1)
        status = agent.status()
        assert status is not None and not status["storage_error"], status
    finally:
        assert agent.stop() == 0
    assert_every_record_readable(layout, env)


def _next_boundary_plus(offset: float) -> float:
    """The wall-clock time ``offset`` seconds from the next window boundary still ahead of us."""
    now = time.time()
    boundary = (int(now) // WINDOW + 1) * WINDOW
    while boundary + offset <= now + 0.05:
        boundary += WINDOW
    return boundary + offset


def test_erasures_racing_flushes_twenty_times_leave_every_record_readable(
    running: tuple[Layout, dict[str, str]],
) -> None:
    """Erasures of every kind, issued just before, at and just after window boundaries (when the
    agent flushes), 20 times; after each, every stored record reads and the agent captures again."""
    layout, env = running
    ok(env, "consent", "grant", "keyboard", "--yes")
    rng = random.Random(14)
    kinds = ["erase-all", "erase-category", "revoke-erase", "erase-period"]
    agent = AgentProcess(layout, env, *SYNTHETIC)
    try:
        agent.wait_state("keyboard", "capturing")
        wait_written_under(layout, grant_in_force(layout))
        for i in range(20):
            offset = rng.uniform(-0.6, 0.6)
            time.sleep(max(0.0, _next_boundary_plus(offset) - time.time()))
            if _erase(kinds[i % len(kinds)], env):
                ok(env, "consent", "grant", "keyboard", "--yes")
            with Vault.open(layout) as vault:
                vault.read_windows()  # every record stored so far authenticates
            status = agent.status()
            assert status is not None and not status["storage_error"], (i, status)
        receipt = grant_in_force(layout)
        agent.wait_state("keyboard", "capturing")
        wait_written_under(layout, receipt, at_least=2)  # and it keeps capturing under the last grant
        assert assert_every_record_readable(layout, env) >= 2
    finally:
        assert agent.stop() == 0
    assert os.path.exists(layout.vault_db)
