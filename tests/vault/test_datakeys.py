"""DataKeys: per-(category, day) keys wrapped by the KEK, counted, rolled over, shredded, re-wrapped.

Against a real vault file; a second ``DataKeys`` on the same connection starts with an empty cache,
so what it unwraps comes from the table, not from memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import vault as vault_package
from protocol.envelope import new_key
from protocol.errors import InvalidRecord
from vault.datakeys import MAX_USES, DataKeys, make_key_id
from vault.paths import Layout
from vault.vault import Vault

CREATED = "2026-03-04T05:06:07Z"


@pytest.fixture
def vault(layout: Layout) -> Iterator[Vault]:
    v = Vault.open(layout)
    yield v
    v.close()


def _fresh(vault: Vault, kek: bytes | None = None) -> DataKeys:
    """Another DataKeys on the same file: nothing cached."""
    return DataKeys(vault.db, (lambda: kek) if kek is not None else vault.kek, lambda: CREATED)


def _row(vault: Vault, key_id: str) -> tuple[str, str, int, str] | None:
    row = vault.db.execute("SELECT category, day, uses, created FROM data_keys WHERE key_id = ?", (key_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), int(row[2]), str(row[3]))


def test_first_write_of_a_day_makes_generation_zero_and_counts_its_uses(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        key_id, key = keys.for_write("keyboard", "2026-03-04", 5)
    assert key_id == make_key_id("keyboard", "2026-03-04", 0) == "keyboard/2026-03-04/0"
    assert len(key) == 32
    assert _row(vault, key_id) == ("keyboard", "2026-03-04", 5, CREATED)
    assert _fresh(vault).unwrap(key_id) == key  # what was stored is the wrapped form of that key


def test_later_writes_of_the_same_day_share_the_key_and_add_up(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        first = keys.for_write("mouse", "2026-03-04", 3)
        second = keys.for_write("mouse", "2026-03-04", 4)
        other_day = keys.for_write("mouse", "2026-03-05", 1)
        other_category = keys.for_write("apps", "2026-03-04", 1)
    assert second == first
    assert _row(vault, first[0]) == ("mouse", "2026-03-04", 7, CREATED)
    assert len({first[0], other_day[0], other_category[0]}) == 3
    assert len({first[1], other_day[1], other_category[1]}) == 3


def test_a_key_with_no_room_left_starts_the_next_generation(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        full_id, full_key = keys.for_write("keyboard", "2026-03-04", MAX_USES)
        next_id, next_key = keys.for_write("keyboard", "2026-03-04", 1)
        after_id, _ = keys.for_write("keyboard", "2026-03-04", 2)
    assert (full_id, next_id, after_id) == ("keyboard/2026-03-04/0", "keyboard/2026-03-04/1", "keyboard/2026-03-04/1")
    assert next_key != full_key
    assert _row(vault, full_id) == ("keyboard", "2026-03-04", MAX_USES, CREATED)
    assert _row(vault, next_id) == ("keyboard", "2026-03-04", 3, CREATED)


def test_added_key_keeps_the_given_uses_and_creation_time(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        key = keys.add("batch/abc", "batch", "2026-03-04", uses=1, created="2026-01-01T00:00:00Z")
        default = keys.add("batch/def", "batch", "2026-03-04")
    assert _row(vault, "batch/abc") == ("batch", "2026-03-04", 1, "2026-01-01T00:00:00Z")
    assert _row(vault, "batch/def") == ("batch", "2026-03-04", 0, CREATED)
    assert key != default
    assert _fresh(vault).unwrap("batch/abc") == key


def test_unknown_key_is_a_key_error(vault: Vault) -> None:
    with pytest.raises(KeyError):
        _fresh(vault).unwrap("keyboard/2026-03-04/0")


def test_a_wrapped_key_moved_to_another_id_does_not_unwrap(vault: Vault) -> None:
    """The wrap is bound to its key id: swapping rows cannot make one day's data readable with another key."""
    keys = _fresh(vault)
    with vault.transaction():
        keys.add("keyboard/2026-03-04/0", "keyboard", "2026-03-04")
        keys.add("keyboard/2026-03-05/0", "keyboard", "2026-03-05")
    (wrapped,) = vault.db.execute("SELECT wrapped FROM data_keys WHERE key_id = 'keyboard/2026-03-04/0'").fetchone()
    vault.db.execute("UPDATE data_keys SET wrapped = ? WHERE key_id = 'keyboard/2026-03-05/0'", (wrapped,))
    with pytest.raises(InvalidRecord):
        _fresh(vault).unwrap("keyboard/2026-03-05/0")


def test_destroyed_keys_are_gone_from_the_file_and_from_memory(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        kept_id, kept = keys.for_write("keyboard", "2026-03-04", 1)
        gone_id, _ = keys.for_write("mouse", "2026-03-04", 1)
        keys.destroy([gone_id])
    assert _row(vault, gone_id) is None
    with pytest.raises(KeyError):
        keys.unwrap(gone_id)  # the instance that had it cached forgot it too
    assert keys.unwrap(kept_id) == kept and _row(vault, kept_id) is not None


def test_a_rolled_back_destroy_leaves_the_key_usable(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        key_id, key = keys.for_write("keyboard", "2026-03-04", 1)
    with pytest.raises(RuntimeError), vault.transaction():
        keys.destroy([key_id])
        raise RuntimeError("abort")
    assert keys.unwrap(key_id) == key


def test_rewrap_moves_every_key_to_the_new_kek(vault: Vault) -> None:
    keys = _fresh(vault)
    with vault.transaction():
        plain = {key_id: key for key_id, key in (keys.for_write(c, "2026-03-04", 1) for c in ("keyboard", "apps"))}
        plain["batch/abc"] = keys.add("batch/abc", "batch", "2026-03-04", uses=1)
    old, new = vault.kek(), new_key()
    before = dict(vault.db.execute("SELECT key_id, wrapped FROM data_keys").fetchall())
    with vault.transaction():
        keys.rewrap(old, new)
    after = dict(vault.db.execute("SELECT key_id, wrapped FROM data_keys").fetchall())
    assert after.keys() == before.keys() == plain.keys()
    assert all(after[k] != before[k] for k in after)
    under_new = _fresh(vault, new)
    assert {k: under_new.unwrap(k) for k in plain} == plain
    with pytest.raises(InvalidRecord):
        _fresh(vault, old).unwrap("keyboard/2026-03-04/0")


def test_datakeys_is_the_only_writer_of_data_key_rows() -> None:
    """Outside vault/datakeys.py no code inserts, updates or deletes data_keys rows."""
    write = re.compile(r"(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+data_keys\b", re.IGNORECASE)
    root = Path(vault_package.__file__).resolve().parent.parent
    offenders = [
        str(path.relative_to(root))
        for package in ("vault", "agent", "protocol", "store", "kit", "admin")
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "datakeys.py" and write.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
