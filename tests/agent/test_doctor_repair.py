"""``consentry doctor`` authenticates every stored record and names what fails; ``doctor --repair`` removes
only what fails, keeps the rest, records it in the ledger, and a real agent stuck on it captures again.

The damage is made the way the erase-while-capturing bug made it: a data key wrapped under a KEK the
vault no longer has (and, for "altered", a flipped byte in one record), written with sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from protocol.envelope import new_key, seal, wrap_context
from protocol.timeutil import utc_day, utc_now
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env
from vault.paths import Layout
from vault.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_772_442_000  # 2026-03-02 09:00 UTC


def consentry(env: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def checks(output: str) -> dict[str, dict[str, str]]:
    listed = json.loads(output.split("\nError")[0])
    return {c["check"]: c for c in listed if c["result"] != "WARN"}


def wait_count(layout: Layout, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Vault.open(layout) as vault:
            if vault.count_windows() >= at_least:
                return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} records after {timeout:.0f} s")


def rewrap_under_a_lost_kek(layout: Layout, key_id: str) -> None:
    """What a writer holding a stale KEK left behind: the key's row wrapped under a key nobody has."""
    with Vault.open(layout) as vault:
        plain = vault.data_keys.unwrap(key_id)
    db = sqlite3.connect(layout.vault_db)
    with db:
        db.execute(
            "UPDATE data_keys SET wrapped = ? WHERE key_id = ?", (seal(new_key(), plain, wrap_context(key_id)), key_id)
        )
    db.close()


def flip_a_byte(layout: Layout, record_id: int) -> None:
    db = sqlite3.connect(layout.vault_db)
    with db:
        (blob,) = db.execute("SELECT blob FROM records WHERE record_id = ?", (record_id,)).fetchone()
        altered = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
        db.execute("UPDATE records SET blob = ? WHERE record_id = ?", (altered, record_id))
    db.close()


def _seed(layout: Layout) -> None:
    """Keyboard on 2026-03-02 (two records) and 03-03, mouse on 03-02."""
    with Vault.open(layout) as vault:
        keys = grant(vault, Category.KEYBOARD, datetime.fromtimestamp(T0 - 3600, UTC))
        mouse = grant(vault, Category.MOUSE, datetime.fromtimestamp(T0 - 3600, UTC))
        vault.write_windows(
            [
                keyboard_window(T0, keys),
                keyboard_window(T0 + 60, keys),
                mouse_window(T0, mouse),
                keyboard_window(T0 + 86_400, keys),
            ]
        )


def test_doctor_names_records_that_fail_and_repair_keeps_every_other_one(home: Path) -> None:
    layout = Layout(home)
    _seed(layout)
    rewrap_under_a_lost_kek(layout, "keyboard/2026-03-02/0")
    flip_a_byte(layout, 4)  # keyboard on 2026-03-03

    shown = consentry(None, "mydata")
    assert shown.returncode == 1
    assert "consentry doctor" in shown.stderr and "ledger verify" not in shown.stderr
    assert consentry(None, "ledger", "verify").returncode == 0  # the ledger is fine: it is not the place to look

    doctor = consentry(None, "doctor", "--json")
    assert doctor.returncode == 1
    stored = checks(doctor.stdout)["stored data"]
    assert stored["result"] == "FAIL"
    assert "3 of 4 stored records do not authenticate" in stored["detail"]
    assert "keyboard on 2026-03-02: 2" in stored["detail"] and "keyboard on 2026-03-03: 1" in stored["detail"]
    assert "consentry doctor --repair" in stored["detail"]
    with Vault.open(layout) as vault:
        assert vault.count_windows() == 4  # doctor alone changes nothing

    repaired = consentry(None, "doctor", "--repair", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    found = checks(repaired.stdout)
    assert found["stored data"]["result"] == "ok" and "removed 3 records" in found["repair"]["detail"]
    with Vault.open(layout) as vault:
        assert [(w.category, w.start) for w in vault.read_windows()] == [("mouse", T0)]  # the one intact record
        (entry,) = vault.ledger.entries(("vault-repaired",))
        assert entry.body["records_removed"] == 3 and entry.body["records_kept"] == 1
        assert entry.body["key_ids"] == ["keyboard/2026-03-02/0"]
        assert entry.body["days"] == ["2026-03-02", "2026-03-03"]
    assert consentry(None, "mydata", "--json").returncode == 0
    assert consentry(None, "ledger", "verify").returncode == 0
    again = consentry(None, "doctor", "--repair", "--json")
    assert again.returncode == 0 and "nothing to repair" in checks(again.stdout)["repair"]["detail"]


def test_a_healthy_vault_is_ok_and_repair_changes_nothing(home: Path) -> None:
    layout = Layout(home)
    _seed(layout)
    doctor = consentry(None, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "all 4 stored records" in checks(doctor.stdout)["stored data"]["detail"]
    with Vault.open(layout) as vault:
        head = vault.ledger_head()
    assert consentry(None, "doctor", "--repair").returncode == 0
    with Vault.open(layout) as vault:
        assert vault.ledger_head() == head and vault.count_windows() == 4


def test_an_agent_stopped_by_an_unreadable_key_captures_again_after_repair(layout: Layout, policy_path: Path) -> None:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    env = agent_env(layout.home, policy_path, None)
    yesterday = utc_now() - timedelta(days=1)
    with Vault.open(layout) as vault:  # one record of yesterday, which the repair must keep
        old = grant(vault, Category.MOUSE, yesterday - timedelta(minutes=5))
        vault.write_windows([mouse_window(int(yesterday.timestamp()) // 60 * 60, old)])
    assert consentry(env, "consent", "grant", "keyboard", "--yes").returncode == 0
    agent = AgentProcess(layout, env, "--replay", "synthetic:seed=9,key_rate=20,move_rate=0")
    try:
        agent.wait_state("keyboard", "capturing")
        key_id = f"keyboard/{utc_day(utc_now())}/0"
        with Vault.open(layout) as vault:
            agent.wait_status(lambda s: s["records_written_today"] >= 1, "a first keyboard record", timeout=40)
            assert vault.db.execute("SELECT 1 FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
        rewrap_under_a_lost_kek(layout, key_id)
        status = agent.wait_state("keyboard", "storage_error", timeout=40)
        assert "consentry doctor" in status["categories"]["keyboard"]["reason"]

        doctor = consentry(env, "doctor", "--json")
        assert doctor.returncode == 1 and f"keyboard on {utc_day(utc_now())}" in doctor.stdout
        repaired = consentry(env, "doctor", "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr

        agent.wait_state("keyboard", "capturing", timeout=40)
        with Vault.open(layout) as vault:
            kept = vault.count_windows()
        wait_count(layout, kept + 1)  # the agent writes again, with a new key
        with Vault.open(layout) as vault:
            windows = vault.read_windows()  # every record authenticates
        assert len(windows) >= kept + 1
        assert any(w.category == "mouse" for w in windows)  # yesterday's record was kept
    finally:
        assert agent.stop() == 0
    assert consentry(env, "mydata", "--json").returncode == 0
