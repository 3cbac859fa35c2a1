"""A vault handle kept open (the agent's) never writes under a key another handle replaced or shredded.

Two real handles on one real vault file, as the agent and ``consentry erase`` are: one caches its KEK and
data keys by writing, the other changes them, then the first writes again. Whatever it wrote must open
for a fresh reader. (The same with real processes: tests/agent/test_erasure_running_agent.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.factories import grant, keyboard_window
from protocol.categories import Category
from protocol.envelope import new_key
from protocol.errors import InvalidRecord
from vault.keys import FileKekStore
from vault.paths import Layout
from vault.shredding import erase_categories
from vault.vault import Vault

NOW = datetime.now(UTC).replace(microsecond=0)
T = int(NOW.timestamp()) // 60 * 60


def _fresh_read(layout: Layout) -> int:
    with Vault.open(layout) as reader:
        return len(reader.read_windows())  # InvalidRecord if anything does not open


def test_a_handle_open_across_a_kek_replacement_writes_under_the_new_kek(layout: Layout) -> None:
    with Vault.open(layout) as agent:
        receipt = grant(agent, Category.KEYBOARD, NOW - timedelta(hours=1))
        agent.write_windows([keyboard_window(T - 600, receipt)])  # the agent has its KEK and today's key
        with Vault.open(layout) as eraser:
            erase_categories(eraser, [Category.KEYBOARD], now=NOW - timedelta(minutes=5), revoked_too=False)
            eraser.replace_kek()
        agent.write_windows([keyboard_window(T, receipt)])
        agent.local_secret("device-key", create=False)  # secrets, re-wrapped by the eraser, still open
    assert _fresh_read(layout) == 1


def test_a_handle_open_across_a_shredded_and_remade_data_key_uses_the_new_key(layout: Layout) -> None:
    with Vault.open(layout) as agent:
        receipt = grant(agent, Category.KEYBOARD, NOW - timedelta(hours=1))
        agent.write_windows([keyboard_window(T - 600, receipt)])  # caches keyboard/<today>/0
        with Vault.open(layout) as other:
            erase_categories(other, [Category.KEYBOARD], now=NOW - timedelta(minutes=5), revoked_too=False)
            other.write_windows([keyboard_window(T - 120, receipt)])  # a new keyboard/<today>/0
        agent.write_windows([keyboard_window(T, receipt)])
    assert _fresh_read(layout) == 2


def test_a_write_under_a_kek_that_does_not_fit_is_refused_and_rolled_back(layout: Layout) -> None:
    """The read-back before COMMIT: a key the vault cannot open again is never written."""
    with Vault.open(layout) as vault:
        receipt = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=1))
        vault.write_windows([keyboard_window(T - 600, receipt)])
        before = vault.count_windows()
        vault.db.execute("UPDATE data_keys SET wrapped = zeroblob(60)")  # a row no KEK opens
        with pytest.raises(InvalidRecord):
            vault.write_windows([keyboard_window(T, receipt)])
        assert vault.count_windows() == before


def test_promoting_one_staged_kek_twice_keeps_it(tmp_path: Path) -> None:
    """Two processes finishing the same swap (the eraser and an agent that noticed it) never lose the key."""
    store = FileKekStore(tmp_path / "keys" / "kek")
    store.create()
    new = new_key()
    store.stage(new)
    store.promote(new)
    store.promote(new)  # the second finds the swap done
    assert store.load() == new and store.staged() is None
    later = new_key()
    store.stage(later)
    store.promote(new)  # a later replacement is staged: not ours to promote
    assert store.load() == new and store.staged() == later
