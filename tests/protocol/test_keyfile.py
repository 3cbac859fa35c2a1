"""Private key files (KEK, store and steward keys): one versioned format; never loosen a folder we did not make."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from protocol.errors import InsecurePermissions, KeyUnavailable, UnsupportedVersion
from protocol.keyfile import encode_key, read_key_file, write_key_file


def test_key_file_in_a_new_folder_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "steward.key"
    write_key_file(path, "ed25519", bytes(range(32)))
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert read_key_file(path, "ed25519") == bytes(range(32))


def test_an_existing_readable_folder_is_accepted_and_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    write_key_file(home / "steward.key", "ed25519", bytes(32))
    assert home.stat().st_mode & 0o777 == 0o755
    assert read_key_file(home / "steward.key", "ed25519") == bytes(32)


def test_a_folder_others_can_write_is_refused_and_not_changed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(InsecurePermissions, match="chmod go-w"):
        write_key_file(shared / "steward.key", "ed25519", bytes(32))
    assert shared.stat().st_mode & 0o7777 == 0o1777 and not (shared / "steward.key").exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k"
    write_key_file(path, "ed25519", bytes(32))
    os.chmod(path, 0o644)
    with pytest.raises(InsecurePermissions, match="chmod 600"):
        read_key_file(path, "ed25519")


def test_a_written_key_file_is_one_version_1_line(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "store-x25519.key"
    write_key_file(path, "x25519", bytes(range(32)))
    assert path.read_text(encoding="ascii") == encode_key("x25519", bytes(range(32)))
    assert path.read_text(encoding="ascii").startswith("consentry-key-v1 x25519 ")


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k"
    write_key_file(path, "ed25519", bytes(32))
    with pytest.raises(FileExistsError):
        write_key_file(path, "ed25519", bytes([1]) * 32)
    assert read_key_file(path, "ed25519") == bytes(32)


def test_a_key_is_only_read_as_its_own_kind(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "steward-ed25519.key"
    write_key_file(path, "ed25519", bytes(32))
    with pytest.raises(KeyUnavailable) as info:
        read_key_file(path, "aes256")
    assert str(path) not in str(info.value) and path.name not in str(info.value)


def test_a_bare_base64_kek_file_is_read_only_as_a_legacy_kek(tmp_path: Path) -> None:
    """Version 0: what the vault's KEK file held before version 1; existing installs keep working."""
    path = tmp_path / "keys" / "kek"
    path.parent.mkdir(mode=0o700)
    path.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    os.chmod(path, 0o600)
    assert read_key_file(path, "aes256", legacy=True) == bytes(range(32))
    with pytest.raises(KeyUnavailable):
        read_key_file(path, "aes256")


def test_a_key_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k"
    write_key_file(path, "aes256", bytes(32))
    os.chmod(path, 0o600)
    path.write_text(path.read_text().replace("consentry-key-v1", "consentry-key-v2"))
    with pytest.raises(UnsupportedVersion):
        read_key_file(path, "aes256")


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not ascii", b"consentry-key-v1 aes256\n"])
def test_a_damaged_key_file_is_key_unavailable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys" / "k"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyUnavailable):
        read_key_file(path, "aes256")


@pytest.mark.parametrize(("kind", "key"), [("rsa", bytes(32)), ("aes256", bytes(31)), ("aes256", bytes(33))])
def test_misuse_is_a_precise_value_error(tmp_path: Path, kind: str, key: bytes) -> None:
    with pytest.raises(ValueError):
        write_key_file(tmp_path / "k", kind, key)
    assert not (tmp_path / "k").exists()
