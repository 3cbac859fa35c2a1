"""The agent's two start-up mechanisms with a real ``systemd --user``: one agent, never a restart loop.

The installed package's systemd user unit and its XDG autostart entry (whose command is
/usr/libexec/consentry/agent-autostart) are driven for real: a ``systemd --user`` manager runs for the
non-root employee in a mount namespace of its own (with a cgroup delegated to it, and /run/systemd/system
present, as on a machine booted with systemd), and a small target stands in for the desktop session that
GNOME or KDE start under systemd (it binds graphical-session.target, as gnome-session's targets do).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.components import require, require_executable
from tests.e2e.package_kit import EMPLOYEE, as_employee, employee_home, run

# Installs packages into this machine (dpkg, /etc, /usr, systemd units) and builds them in build/package:
# run alone, never beside other tests (scripts/test.sh runs these first, one at a time).
pytestmark = pytest.mark.machine_global

SYSTEMD = Path("/lib/systemd/systemd")
DEADLINE = 60.0  # generous: waiting for a state, never asserting how long it took
DESKTOP_TARGET = """[Unit]
Description=A desktop session started by systemd (as gnome-session-x11.target is)
BindsTo=graphical-session.target
Wants=graphical-session.target
Before=graphical-session.target
"""
AUTOSTART = "/usr/libexec/consentry/agent-autostart"
UNIT = "consentry-agent.service"


def _cgroup_roots() -> list[Path]:
    """Where a delegated cgroup must be made: the v2 hierarchy, plus the named v1 one in hybrid mode."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [p for p in (base / "unified", base / "systemd") if (p / "cgroup.procs").exists()]


@dataclass
class UserManager:
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*as_employee(["systemctl", "--user", *args], self.env), check=check, timeout=120)

    def prop(self, unit: str, name: str) -> str:
        return self.systemctl("show", "-P", name, unit).stdout.strip()

    def wait_for(self, what: str, condition: object) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"still waiting for {what}"
            time.sleep(0.2)

    @property
    def lock(self) -> Path:
        return self.home / ".local" / "share" / "consentry" / "run" / "agent.lock"

    def lock_holder(self) -> int | None:
        """The pid in the agent's lock file, if an agent holds the lock now (flock probe, as root)."""
        import fcntl

        if not self.lock.exists():
            return None
        with open(self.lock, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().decode().strip()
                return int(text) if text else None
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None


@pytest.fixture
def user_manager(system_install: None, packages: dict[str, Path]) -> Iterator[UserManager]:
    for name, package in (("unshare", "util-linux"), ("systemctl", "systemd")):
        require_executable(name, package)
    require(SYSTEMD.is_file(), "systemd", "apt-get install systemd")
    roots = _cgroup_roots()
    require(bool(roots), "a cgroup hierarchy to delegate", "run on Linux with cgroups mounted")
    run("dpkg", "-i", str(packages["deb"]))
    entry = pwd.getpwnam(EMPLOYEE)
    with employee_home() as home:
        runtime = home / "run"
        runtime.mkdir(mode=0o700)
        (home / ".config" / "systemd" / "user").mkdir(parents=True)
        (home / ".config" / "systemd" / "user" / "test-desktop.target").write_text(DESKTOP_TARGET)
        for path in [runtime, *home.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        env = {
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        groups = [root / f"consentry-test-{os.getpid()}" for root in roots]
        for group in groups:
            group.mkdir()
            shutil.chown(group, entry.pw_uid, entry.pw_gid)
            for control in group.iterdir():  # the manager creates its own groups below this one
                shutil.chown(control, entry.pw_uid, entry.pw_gid)
        enter = (
            'for g in "$@"; do echo $$ > "$g/cgroup.procs"; done; '
            "mount -t tmpfs tmpfs /run/systemd 2>/dev/null || { mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }; "
            "mkdir -p /run/systemd/system; "
            f"exec setpriv --reuid={entry.pw_uid} --regid={entry.pw_gid} --clear-groups "
            f"/usr/bin/env -i {' '.join(f'{k}={v}' for k, v in env.items())} {SYSTEMD} --user"
        )
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", enter, "enter", *map(str, groups)],
            stdout=subprocess.DEVNULL,
            stderr=(home / "manager.log").open("wb"),  # removed with the home
        )
        manager = UserManager(home=home, env=env, process=process)
        try:
            manager.wait_for(
                "the user manager",
                lambda: (
                    process.poll() is None
                    and manager.systemctl("show", "-P", "SystemState", check=False).stdout.strip()
                    in ("running", "degraded")
                ),  # not is-system-running: it asks this (non-systemd) host, not the manager
            )
            manager.systemctl("set-environment", "DISPLAY=:87", "CONSENTRY_KEYSTORE=file")
            yield manager
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the manager stops its units, then exits
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for group in groups:
                for sub in sorted(group.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if sub.is_dir():
                        sub.rmdir()
                group.rmdir()


def _start_agent_outside_systemd(manager: UserManager, argv: list[str]) -> subprocess.Popen[bytes]:
    env = dict(manager.env, DISPLAY=":87", CONSENTRY_KEYSTORE="file")
    return subprocess.Popen(as_employee(argv, env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        run("pkill", "-TERM", "-P", str(process.pid), check=False)  # runuser's child: the agent
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_in_a_systemd_session_the_unit_runs_the_agent_and_autostart_defers(user_manager: UserManager) -> None:
    manager = user_manager
    manager.systemctl("enable", UNIT)
    manager.systemctl("start", "test-desktop.target")
    manager.wait_for("the unit's agent", lambda: manager.lock_holder() is not None)
    main_pid = int(manager.prop(UNIT, "MainPID"))
    assert manager.lock_holder() == main_pid

    # The session's autostart entry runs too: it defers, starting nothing.
    deferred = run(*as_employee([AUTOSTART], dict(manager.env, DISPLAY=":87")), check=False, timeout=120)
    assert deferred.returncode == 0, deferred.stderr
    # Started by hand anyway: the lock refuses the second agent.
    second = run(*as_employee(["consentry", "agent", "run"], dict(manager.env, DISPLAY=":87")), check=False)
    assert second.returncode == 1 and "already running" in second.stderr
    assert manager.lock_holder() == main_pid == int(manager.prop(UNIT, "MainPID"))
    assert manager.prop(UNIT, "ActiveState") == "active" and manager.prop(UNIT, "NRestarts") == "0"


def test_the_unit_started_after_another_agent_exits_once_and_does_not_restart(user_manager: UserManager) -> None:
    manager = user_manager
    first = _start_agent_outside_systemd(manager, ["consentry", "agent", "run"])
    try:
        manager.wait_for("the first agent", lambda: manager.lock_holder() is not None)
        holder = manager.lock_holder()
        manager.systemctl("start", UNIT)  # Type=simple: returns once the process is started
        manager.wait_for("the unit to give up", lambda: manager.prop(UNIT, "ActiveState") in ("failed", "inactive"))
        # Not "activating (auto-restart)": no restart is scheduled, so no loop.
        assert manager.prop(UNIT, "SubState") in ("failed", "dead")
        assert manager.prop(UNIT, "NRestarts") == "0" and manager.prop(UNIT, "ExecMainStatus") == "1"
        assert manager.lock_holder() == holder and first.poll() is None
    finally:
        _stop(first)


def test_without_a_systemd_session_the_autostart_entry_runs_the_agent(user_manager: UserManager) -> None:
    manager = user_manager
    manager.systemctl("enable", UNIT)  # enabled, but no desktop session under systemd: autostart runs it
    assert manager.systemctl("is-active", "graphical-session.target", check=False).returncode != 0
    started = _start_agent_outside_systemd(manager, [AUTOSTART])
    try:
        manager.wait_for("the autostarted agent", lambda: manager.lock_holder() is not None)
        assert manager.prop(UNIT, "ActiveState") == "inactive"
        assert started.poll() is None
    finally:
        _stop(started)
