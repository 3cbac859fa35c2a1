"""``consentry erase --all`` destroys the vault key (KEK): a copy of the vault made before cannot be read.

The attacker of this test copied the vault file (not the key) before the erasure, and after it holds
every key the computer has now. With the old KEK gone, none of the copy's wrapped data keys opens.
"""

from __future__ import annotations

import base64
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from devkit.factories import grant, keyboard_window, mouse_window
from protocol.categories import Category
from protocol.envelope import open_blob, wrap_context
from protocol.errors import InvalidRecord, KeyUnavailable
from tests.keyring_kit import MemoryKeyring
from vault.keys import KEYRING_SERVICE, FileKekStore
from vault.paths import Layout
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60 - 7200


def _fill(layout: Layout) -> tuple[int, str]:
    """A vault with records of two categories; returns (records, device key id)."""
    with Vault.open(layout) as vault:
        r = {c: grant(vault, c, NOW - timedelta(hours=3)) for c in (Category.KEYBOARD, Category.MOUSE)}
        vault.write_windows([keyboard_window(T, r[Category.KEYBOARD]), mouse_window(T, r[Category.MOUSE])])
        return vault.count_windows(), vault.device_key.kid


def _copy_vault_file(layout: Layout, to: Path) -> Path:
    """What a backup or an attacker takes: the database (with its WAL), not the key."""
    to.mkdir()
    with sqlite3.connect(layout.vault_db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = to / layout.vault_db.name
    shutil.copy2(layout.vault_db, copy)
    return copy


def _wrapped_keys(db: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(db) as conn:
        return [(str(k), bytes(w)) for k, w in conn.execute("SELECT key_id, wrapped FROM data_keys")]


def _erase_all() -> None:
    result = CliRunner().invoke(cli, ["erase", "--all", "--yes"])
    assert result.exit_code == 0, result.output


def _old_copy_with_todays_keys(copy: Path, layout: Layout, tmp_path: Path) -> Layout:
    """The old vault file placed beside every key file this computer has after the erasure."""
    attacker = Layout(tmp_path / "attacker")
    attacker.home.mkdir(mode=0o700)
    shutil.copytree(layout.key_dir, attacker.key_dir)
    shutil.copy2(copy, attacker.vault_db)
    return attacker


def test_erase_all_destroys_the_kek_so_an_earlier_copy_of_the_vault_stays_closed(
    layout: Layout, tmp_path: Path
) -> None:
    records, device_kid = _fill(layout)
    assert records == 2
    old_kek = FileKekStore(layout.kek_file).load()
    copy = _copy_vault_file(layout, tmp_path / "backup")
    wrapped = _wrapped_keys(copy)
    assert wrapped and all(open_blob(old_kek, w, wrap_context(k)) for k, w in wrapped)  # the copy is readable

    _erase_all()

    new_kek = FileKekStore(layout.kek_file).load()
    assert new_kek != old_kek
    key_files = [p for p in layout.home.rglob("*") if p.is_file()]
    for path in key_files:  # the old KEK is nowhere on disk any more, in any encoding
        data = path.read_bytes()
        assert old_kek not in data and base64.b64encode(old_kek) not in data, path
    for key_id, blob in wrapped:  # today's key opens none of the copy's data keys
        with pytest.raises(InvalidRecord):
            open_blob(new_kek, blob, wrap_context(key_id))
    attacker = _old_copy_with_todays_keys(copy, layout, tmp_path)
    with Vault.open(attacker, create=False) as old, pytest.raises(KeyUnavailable):
        old.read_windows()

    with Vault.open(layout, create=False) as vault:  # the erased vault goes on under the new key
        assert vault.count_windows() == 0
        assert vault.device_key.kid == device_kid  # still the enrolled device: queued erasures can be sent
        after = int(datetime.now(UTC).timestamp()) + 60  # collected again, after the erasure
        r = grant(vault, Category.KEYBOARD, datetime.fromtimestamp(after, UTC))
        vault.write_windows([keyboard_window(after + 1, r)])
        assert [w.category for w in vault.read_windows()] == ["keyboard"]


def test_a_replacement_interrupted_after_commit_is_finished_on_next_open(layout: Layout, tmp_path: Path) -> None:
    """The new key is written beside the old one first; a crash before the swap leaves a working vault."""
    _fill(layout)
    store = FileKekStore(layout.kek_file)
    old_kek = store.load()
    with Vault.open(layout, create=False) as vault:
        new_kek = vault.replace_kek(promote=False)  # committed, then "crashed" before the swap
    assert store.load() == old_kek and store.staged() == new_kek
    with Vault.open(layout, create=False) as vault:
        assert vault.count_windows() == 2 and len(vault.read_windows()) == 2  # re-wrapped, and readable
    assert store.load() == new_kek and store.staged() is None  # the swap was finished on open


def test_erase_all_destroys_a_kek_kept_in_the_os_keyring(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv("CONSENTRY_KEYSTORE", "keyring")
    try:
        _fill(layout)
        assert not layout.kek_file.exists()
        (old_account,) = [u for s, u in backend.items if s == KEYRING_SERVICE]
        old_kek = base64.b64decode(backend.items[(KEYRING_SERVICE, old_account)])
        wrapped = _wrapped_keys(layout.vault_db)
        _erase_all()
        secrets_now = {base64.b64decode(v) for (s, _), v in backend.items.items() if s == KEYRING_SERVICE}
        assert old_kek not in secrets_now and len(secrets_now) == 1
        (new_kek,) = secrets_now
        for key_id, blob in wrapped:
            with pytest.raises(InvalidRecord):
                open_blob(new_kek, blob, wrap_context(key_id))
        with Vault.open(layout, create=False) as vault:
            assert vault.count_windows() == 0 and vault.kek() == new_kek
    finally:
        keyring.set_keyring(previous)
