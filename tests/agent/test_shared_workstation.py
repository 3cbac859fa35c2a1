"""A shared workstation: everything a running agent and the employee's commands leave behind stays private.

The employee's shell may have any umask (000 here: every file a program creates without its own mode is
world-writable), and the folder around Consentry's home may be open to everyone (0755, as a home folder
often is). After a real agent captured and the employee used the CLI, no file or folder under the home
grants anything to another account, and a real second Unix user (``nobody``) can neither list, read nor
connect to any of it while the agent runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logs import BACKUPS, LOG_FILE, MAX_BYTES, setup_logging
from protocol.categories import Category
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env, wait_records
from tests.other_user import SYSTEM_PYTHON, as_other_user, require_other_user
from vault.paths import Layout

# Runs as ``nobody``: every attempt on the paths given, one line each: "<path> <what> <outcome>".
_PROBE = r"""
import os, socket, sys
for path in sys.argv[1:]:
    for what, attempt in (
        ("list", lambda: os.listdir(path)),
        ("read", lambda: open(path, "rb").read(1)),
        ("write", lambda: open(path, "ab").close()),
        ("connect", lambda: socket.socket(socket.AF_UNIX).connect(path)),
    ):
        try:
            attempt()
            outcome = "allowed"
        except OSError as exc:
            outcome = type(exc).__name__
        print(path, what, outcome, flush=True)
"""


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every account may enter (0755), outside pytest's private tmp tree."""
    folder = Path(tempfile.mkdtemp(prefix="consentry-shared-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _consentry(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "agent", *args], env=env, check=True, capture_output=True, timeout=120)


def _everything_under(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def test_nothing_the_agent_and_the_cli_leave_behind_is_open_to_another_account(open_folder: Path) -> None:
    require_other_user()
    layout = Layout(open_folder / "home")
    policy_path = open_folder / "policy.toml"
    policy_path.write_text(SHORT_WINDOW_POLICY)
    policy_path.chmod(0o644)  # IT's machine policy is for everyone to read
    env = agent_env(layout.home, policy_path, None)
    old_umask = os.umask(0)  # inherited by every process started below
    try:
        _consentry(env, "consent", "grant", "keyboard", "--yes")
        _consentry(env, "exclude", "add", "code")
        agent = AgentProcess(layout, env, "--replay", "synthetic:seed=3,key_rate=20,move_rate=0")
        try:
            agent.wait_state("keyboard", "capturing")
            wait_records(layout, Category.KEYBOARD)
            _consentry(env, "pause", "--for", "1h")
            _consentry(env, "resume")
            _consentry(env, "mydata")
            _consentry(env, "batches", "list")
            _consentry(env, "doctor")
            loose = [
                f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p.relative_to(open_folder)}"
                for p in _everything_under(layout.home)
                if stat.S_IMODE(p.lstat().st_mode) & 0o077
            ]
            assert not loose, f"open to other accounts: {loose}"

            paths = [str(p) for p in _everything_under(layout.home)]
            probe = subprocess.run(
                [*as_other_user(), SYSTEM_PYTHON, "-I", "-c", _PROBE, *paths],
                capture_output=True,
                text=True,
                timeout=60,
                cwd="/",
            )
            assert probe.returncode == 0, probe.stderr
            allowed = [line for line in probe.stdout.splitlines() if line.endswith(" allowed")]
            assert len(probe.stdout.splitlines()) == 4 * len(paths)
            assert not allowed, f"another account got in: {allowed}"
            assert layout.control_socket.exists() and agent.alive()
        finally:
            assert agent.stop() == 0
    finally:
        os.umask(old_umask)


def test_the_agent_log_stays_owner_only_across_rotations(tmp_path: Path) -> None:
    """The log rotates at 1 MB; each new file is created under the process umask unless we say otherwise."""
    old_umask = os.umask(0)
    try:
        logger = setup_logging(tmp_path / "logs")
        for i in range(3 * MAX_BYTES // 60):
            logger.debug("keyboard: capturing (a state line of about sixty bytes) %d", i)
            logger.info("keyboard: capturing (a state line of about sixty bytes) %d", i)
    finally:
        os.umask(old_umask)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    files = sorted((tmp_path / "logs").iterdir())
    assert [p.name for p in files] == [LOG_FILE, *(f"{LOG_FILE}.{n}" for n in range(1, BACKUPS + 1))]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o600" for p in files}
