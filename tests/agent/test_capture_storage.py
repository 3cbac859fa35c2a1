"""A vault that cannot be written (full disk, read-only) pauses capture with a clear status; it never crashes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.components import require
from protocol.categories import Category
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env, grant, records, wait_records
from vault.paths import Layout


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True)


@pytest.fixture
def small_disk_home(layout: Layout) -> Iterator[Layout]:
    """The Consentry home on a small tmpfs; run/ and logs/ on their own, so only the vault fills up."""
    can_mount = os.geteuid() == 0 and shutil.which("mount") is not None
    require(can_mount, "mounting a tmpfs (needs root)", "run the storage tests as root, as CI does")
    mounts = [layout.home, layout.runtime_dir, layout.log_dir]
    try:
        _mount_tmpfs(layout.home, "4m")
        _mount_tmpfs(layout.runtime_dir, "1m")
        _mount_tmpfs(layout.log_dir, "1m")
    except subprocess.CalledProcessError:
        for where in reversed(mounts):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        require(False, "mounting a tmpfs", "this container does not permit mount")
    try:
        yield layout
    finally:
        for where in reversed(mounts):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def test_full_disk_gives_storage_error_status_and_recovers(small_disk_home: Layout, policy_path: Path) -> None:
    layout = small_disk_home
    policy_path.write_text(SHORT_WINDOW_POLICY)
    grant(layout, policy_path, Category.KEYBOARD)
    agent = AgentProcess(
        layout,
        agent_env(layout.home, policy_path, None),
        "--replay",
        "synthetic:seed=7,key_rate=20,move_rate=0",
    )
    try:
        agent.wait_state("keyboard", "capturing")
        before = len(wait_records(layout, Category.KEYBOARD))
        filler = _fill(layout.home)
        status = agent.wait_state("keyboard", "storage_error", timeout=30)
        assert "cannot be written" in status["categories"]["keyboard"]["reason"]
        assert status["storage_error"]
        assert str(layout.home) not in str(status)
        assert agent.alive()
        filler.unlink()
        agent.wait_state("keyboard", "capturing", timeout=60)  # retried with backoff, then resumed
        wait_records(layout, Category.KEYBOARD, at_least=before + 1, timeout=30)
    finally:
        assert agent.stop() == 0
    assert len(records(layout, Category.KEYBOARD)) > before


def _set_immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True, capture_output=True)


def test_read_only_vault_gives_storage_error_status_and_recovers(layout: Layout, policy_path: Path) -> None:
    """chattr +i makes the database and its WAL read-only even for root (file modes do not)."""
    chattr = shutil.which("chattr")
    require(chattr is not None and os.geteuid() == 0, "chattr as root", "apt-get install e2fsprogs; run as root")
    policy_path.write_text(SHORT_WINDOW_POLICY)
    grant(layout, policy_path, Category.KEYBOARD)
    agent = AgentProcess(
        layout, agent_env(layout.home, policy_path, None), "--replay", "synthetic:seed=8,key_rate=20,move_rate=0"
    )
    frozen = [layout.vault_db, Path(f"{layout.vault_db}-wal")]  # not -shm: SQLite maps it, and a frozen map is SIGBUS
    try:
        agent.wait_state("keyboard", "capturing")
        before = len(wait_records(layout, Category.KEYBOARD))
        probe = subprocess.run(["chattr", "+i", str(frozen[0])], capture_output=True, text=True)
        if probe.returncode != 0:
            require(False, "chattr +i on this filesystem", probe.stderr.strip() or "unsupported")
        _set_immutable(frozen, True)
        try:
            status = agent.wait_state("keyboard", "storage_error", timeout=40)
            assert status["storage_error"] and str(layout.home) not in str(status)
            assert agent.alive()
        finally:
            _set_immutable(frozen, False)
        agent.wait_state("keyboard", "capturing", timeout=60)
        wait_records(layout, Category.KEYBOARD, at_least=before + 1, timeout=30)
    finally:
        if frozen[0].exists():
            _set_immutable([p for p in frozen if p.exists()], False)
        assert agent.stop() == 0


def _vault_records(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM records").fetchone()[0])


@pytest.mark.parametrize("how", ["folder-removed", "vault-restored"])
def test_a_vault_removed_or_replaced_while_the_agent_runs_stops_capture(
    how: str, layout: Layout, policy_path: Path, tmp_path: Path
) -> None:
    """The employee (or a clean-up tool, or IT resetting a profile) deletes the Consentry folder, or puts
    back a copy of the vault from a backup, while the agent captures. Before: the agent went on capturing
    into the file it still had open, which no command could show or erase any more, while `consentry
    status` said "not running" and nothing granted, and no command could reach it to pause or withdraw.
    Now it stops: nothing more is captured or written, it says why, and it leaves the folder as it is."""
    policy_path.write_text(SHORT_WINDOW_POLICY)
    grant(layout, policy_path, Category.KEYBOARD)
    backup = tmp_path / "vault-backup.sqlite3"
    agent = AgentProcess(layout, agent_env(layout.home, policy_path, None), "--replay", "synthetic:seed=3,key_rate=20")
    try:
        agent.wait_state("keyboard", "capturing")
        wait_records(layout, Category.KEYBOARD)
        if how == "folder-removed":
            shutil.rmtree(layout.home)
        else:
            with sqlite3.connect(layout.vault_db) as live, sqlite3.connect(backup) as copy:
                live.backup(copy)  # SQLite's online backup, as a backup tool takes it
            restored_records = _vault_records(backup)
            os.replace(backup, layout.vault_db)
        code = agent.proc.wait(timeout=30)  # before the fix it never ends by itself
    finally:
        agent.stop()
    assert code == 1
    assert "was removed or replaced while the agent ran" in agent.stderr
    assert "capture stopped" in agent.stderr
    if how == "folder-removed":
        assert not layout.home.exists(), "the agent must not recreate the folder the employee removed"
    else:
        assert _vault_records(layout.vault_db) == restored_records  # nothing written into the restored copy
