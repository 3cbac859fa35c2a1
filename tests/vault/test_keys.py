"""Where the KEK lives (vault/keys.py): real key files on disk, and a real keyring backend kept in memory."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import fail

from protocol.errors import InsecurePermissions, KeyUnavailable, UnsupportedVersion
from protocol.keyfile import decode_key
from tests.keyring_kit import MemoryKeyring
from vault.keys import (
    KEYRING_SERVICE,
    KEYSTORE_ENV,
    FileKekStore,
    KeyringKekStore,
    choose_kek_store,
    keyring_is_usable,
)
from vault.paths import Layout


@pytest.fixture
def store(layout: Layout) -> FileKekStore:
    return FileKekStore(layout.kek_file)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# -- the key file --------------------------------------------------------------------------------


def test_a_new_kek_is_a_version_1_key_file_only_its_owner_can_read(store: FileKekStore) -> None:
    key = store.create()
    assert len(key) == 32 and store.load() == key
    text = store.path.read_text(encoding="ascii")
    assert text.startswith("consentry-key-v1 aes256 ") and decode_key(text, "aes256") == key
    assert _mode(store.path) == 0o600 and _mode(store.path.parent) == 0o700


def test_create_never_overwrites_a_kek(store: FileKekStore) -> None:
    key = store.create()
    with pytest.raises(FileExistsError):
        store.create()
    assert store.load() == key


def test_a_kek_file_from_before_version_1_still_opens(store: FileKekStore) -> None:
    """Existing installs: the KEK file held the bare base64 of the key."""
    store.path.parent.mkdir(mode=0o700, parents=True)
    key = bytes(range(32))
    store.path.write_text(base64.b64encode(key).decode("ascii") + "\n", encoding="ascii")
    os.chmod(store.path, 0o600)
    assert store.load() == key


def test_replacing_a_legacy_kek_writes_the_new_one_in_version_1(store: FileKekStore) -> None:
    store.path.parent.mkdir(mode=0o700, parents=True)
    store.path.write_text(base64.b64encode(bytes(32)).decode("ascii") + "\n", encoding="ascii")
    os.chmod(store.path, 0o600)
    new = bytes(range(32))
    store.stage(new)
    store.promote()
    assert store.path.read_text(encoding="ascii").startswith("consentry-key-v1 aes256 ")
    assert store.load() == new


def test_a_missing_kek_says_how_to_recover_without_the_path(store: FileKekStore) -> None:
    with pytest.raises(KeyUnavailable, match="erase --all --force") as info:
        store.load()
    assert str(store.path.parent.parent) not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not base64 at all", b"\xff\xfe", b"consentry-key-v1 ed25519 " + b"A" * 44])
def test_a_damaged_kek_file_is_key_unavailable(store: FileKekStore, content: bytes) -> None:
    store.create()
    store.path.write_bytes(content)
    with pytest.raises(KeyUnavailable, match="damaged") as info:
        store.load()
    assert str(store.path.parent.parent) not in str(info.value)


def test_a_kek_file_from_a_newer_version_is_refused(store: FileKekStore) -> None:
    store.create()
    store.path.write_text(store.path.read_text().replace("-v1 ", "-v2 "))
    with pytest.raises(UnsupportedVersion):
        store.load()


@pytest.mark.parametrize(("target", "mode"), [("file", 0o640), ("file", 0o604), ("folder", 0o750), ("folder", 0o705)])
def test_a_kek_others_could_read_is_refused(store: FileKekStore, target: str, mode: int) -> None:
    store.create()
    os.chmod(store.path if target == "file" else store.path.parent, mode)
    with pytest.raises(InsecurePermissions, match="chmod"):
        store.load()


# -- replacing a KEK ------------------------------------------------------------------------------


def test_a_staged_kek_waits_beside_the_current_one(store: FileKekStore) -> None:
    old = store.create()
    assert store.staged() is None
    new = bytes(range(32))
    store.stage(new)
    assert store.load() == old and store.staged() == new
    assert _mode(store.next_path) == 0o600


def test_staging_again_replaces_the_earlier_staged_kek(store: FileKekStore) -> None:
    store.create()
    store.stage(bytes(32))
    store.stage(bytes(range(32)))
    assert store.staged() == bytes(range(32))


def test_promote_makes_the_staged_kek_current_and_leaves_no_trace_of_the_old(store: FileKekStore) -> None:
    old = store.create()
    new = bytes(range(32))
    store.stage(new)
    store.promote()
    assert store.load() == new and store.staged() is None and not store.next_path.exists()
    for path in store.path.parent.iterdir():
        data = path.read_bytes()
        assert old not in data and base64.b64encode(old) not in data


def test_destroy_removes_the_current_and_the_staged_kek(store: FileKekStore) -> None:
    store.create()
    store.stage(bytes(range(32)))
    store.destroy()
    assert not store.path.exists() and not store.next_path.exists()
    with pytest.raises(KeyUnavailable):
        store.load()
    store.destroy()  # nothing left to destroy: not an error


# -- the OS keyring -------------------------------------------------------------------------------


class PlaintextKeyring(MemoryKeyring):
    """Named like keyrings.alt's plaintext backend: a secret kept beside the data."""


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_a_kek_in_the_keyring_is_created_staged_promoted_and_destroyed(memory_keyring: MemoryKeyring) -> None:
    store = KeyringKekStore("vault-1")
    old = store.create()
    assert store.load() == old and store.staged() is None
    assert memory_keyring.items == {(KEYRING_SERVICE, "vault-1"): base64.b64encode(old).decode()}
    new = bytes(range(32))
    store.stage(new)
    assert store.load() == old and store.staged() == new
    store.promote()
    assert store.load() == new and store.staged() is None
    assert list(memory_keyring.items) == [(KEYRING_SERVICE, "vault-1")]
    store.destroy()
    assert memory_keyring.items == {}
    with pytest.raises(KeyUnavailable, match="missing from the OS keyring"):
        store.load()


def test_a_damaged_keyring_entry_is_key_unavailable(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password(KEYRING_SERVICE, "vault-1", "not a key")
    with pytest.raises(KeyUnavailable, match="damaged"):
        KeyringKekStore("vault-1").load()


def test_promote_without_a_staged_kek_keeps_the_current_one(memory_keyring: MemoryKeyring) -> None:
    store = KeyringKekStore("vault-1")
    key = store.create()
    with pytest.raises(KeyUnavailable):
        store.promote()
    assert store.load() == key


# -- choosing where the KEK lives ----------------------------------------------------------------


def test_only_a_real_encrypted_keyring_is_usable() -> None:
    previous = keyring.get_keyring()
    try:
        keyring.set_keyring(fail.Keyring())
        assert not keyring_is_usable()
        keyring.set_keyring(PlaintextKeyring())
        assert not keyring_is_usable()
        keyring.set_keyring(MemoryKeyring())
        assert keyring_is_usable()
    finally:
        keyring.set_keyring(previous)


def test_the_recorded_choice_wins_over_the_environment(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "keyring")
    chosen = choose_kek_store("file", key_file=layout.kek_file, account="a")
    assert isinstance(chosen, FileKekStore) and chosen.path == layout.kek_file
    monkeypatch.setenv(KEYSTORE_ENV, "file")
    chosen_keyring = choose_kek_store("keyring", key_file=layout.kek_file, account="a")
    assert isinstance(chosen_keyring, KeyringKekStore) and chosen_keyring.account == "a"


def test_the_environment_chooses_for_a_new_vault(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "file")  # what every other test runs with (tests/conftest.py)
    assert choose_kek_store(None, key_file=layout.kek_file, account="a").kind == "file"
    monkeypatch.setenv(KEYSTORE_ENV, "keyring")
    assert choose_kek_store(None, key_file=layout.kek_file, account="a").kind == "keyring"


def test_auto_falls_back_to_a_file_without_a_real_keyring(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "auto")
    previous = keyring.get_keyring()
    try:
        keyring.set_keyring(fail.Keyring())
        assert choose_kek_store(None, key_file=layout.kek_file, account="a").kind == "file"
        keyring.set_keyring(MemoryKeyring())
        assert choose_kek_store(None, key_file=layout.kek_file, account="a").kind == "keyring"
    finally:
        keyring.set_keyring(previous)


def test_an_unknown_keystore_is_a_precise_error(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "vault")
    with pytest.raises(ValueError, match=KEYSTORE_ENV):
        choose_kek_store(None, key_file=layout.kek_file, account="a")
