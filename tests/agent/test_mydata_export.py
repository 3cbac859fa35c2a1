"""``consentry mydata --export FILE.db``: the employee's own data as a plain, owner-only SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from vault.paths import Layout
from vault.vault import Vault

DAY = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def vault_with_data(home: Path) -> dict[str, str]:
    with Vault.open(Layout(home)) as vault:
        granted = datetime(2026, 11, 20, tzinfo=UTC)
        keyboard = grant(vault, Category.KEYBOARD, now=granted)
        mouse = grant(vault, Category.MOUSE, now=granted)
        vault.write_windows(
            [
                keyboard_window(DAY + 60, keyboard, letters=17),
                keyboard_window(DAY + 120, keyboard),
                mouse_window(DAY + 60, mouse),
            ]
        )
    return {"keyboard": keyboard, "mouse": mouse}


def test_export_writes_one_table_per_category_receipts_and_ledger(
    vault_with_data: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "mine.db"
    result = run("mydata", "--export", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"]["keyboard"] == 2
    db = sqlite3.connect(out)  # any SQLite tool reads it: no key, no extension
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"keyboard", "mouse", "consent_receipts", "ledger", "export_info"} <= tables
    letters = sorted(json.loads(k)["letter"] for (k,) in db.execute("SELECT key_counts FROM keyboard"))
    assert letters == [10, 17]
    assert {r for (r,) in db.execute("SELECT receipt_id FROM keyboard")} == {vault_with_data["keyboard"]}
    receipts = {r for (r,) in db.execute("SELECT receipt_id FROM consent_receipts")}
    assert receipts == set(vault_with_data.values())
    kinds = [k for (k,) in db.execute("SELECT kind FROM ledger ORDER BY seq")]
    assert kinds.count("grant") == 2


def test_export_is_owner_only_and_warns_it_is_plaintext(vault_with_data: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "mine.db"
    old = os.umask(0o000)  # even a permissive umask gives 0600
    try:
        result = run("mydata", "--export", str(out))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "NOT encrypted" in result.stderr


def test_export_never_overwrites_and_changes_nothing(vault_with_data: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "existing.db"
    out.write_bytes(b"keep me")
    result = run("mydata", "--export", str(out))
    assert result.exit_code == 1 and "already exists" in result.output
    assert out.read_bytes() == b"keep me"
    missing_folder = run("mydata", "--export", str(tmp_path / "no-such-folder" / "x.db"))
    assert missing_folder.exit_code == 1 and "does not exist" in missing_folder.output
    assert "Traceback" not in result.output + missing_folder.output


def test_export_without_a_vault_says_there_is_nothing(home: Path, tmp_path: Path) -> None:
    result = run("mydata", "--export", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "nothing to export" in result.output
    assert not (tmp_path / "x.db").exists()
