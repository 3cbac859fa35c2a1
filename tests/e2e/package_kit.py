"""Build the .deb/.rpm with scripts/package.sh, and run commands as a real non-root user.

Shared by the package tests (this machine, the clean chroot, lintian, the session start-up units).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EMPLOYEE = "nobody"  # a real second account: not root, no home of its own, no write access to /opt


def run(
    *argv: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 1500
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def build(out: Path, version: str, *, reuse_stage: bool, python: str | None = None) -> tuple[Path, Path]:
    """Run scripts/package.sh for ``version``; returns (deb, rpm)."""
    env = dict(os.environ, PKG_VERSION=version, PKG_REUSE_STAGE="1" if reuse_stage else "0")
    if python is not None:
        env["PYTHON"] = python
    run("bash", str(REPO / "scripts" / "package.sh"), str(out), env=env)
    debs = sorted(out.glob(f"consentry_{version}_*.deb"))
    rpms = sorted(out.glob(f"consentry-{version}-*.rpm"))
    assert len(debs) == 1 and len(rpms) == 1, sorted(p.name for p in out.iterdir())
    return debs[0], rpms[0]


def as_employee(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` run as the non-root employee account, with exactly ``env``.

    runuser switches user fully before the command is executed. (``setpriv --reuid`` does not: it execs
    with root's capabilities still effective, so an interpreter under /root, unreadable to the employee,
    is found anyway and the bug this suite guards against goes unseen.)
    """
    return [
        "/usr/sbin/runuser",
        "-u",
        EMPLOYEE,
        "--",
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        *argv,
    ]


@contextmanager
def employee_home() -> Iterator[Path]:
    """A home folder the employee account owns, in /tmp (pytest's own folders are root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="consentry-employee-", dir="/tmp"))
    entry = pwd.getpwnam(EMPLOYEE)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def employee_env(home: Path) -> dict[str, str]:
    """The environment an employee's login gives the command: the system PATH only, their own HOME."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "CONSENTRY_KEYSTORE": "file",  # no desktop keyring in a test session
        "LANG": "C.UTF-8",
    }
