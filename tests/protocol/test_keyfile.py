"""Private key files (steward and store keys): never loosen or tighten a folder we did not make."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protocol.errors import InsecurePermissions
from protocol.keyfile import read_key_file, write_key_file


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
