"""The .deb on a Debian 12 system that never saw the build: a fresh mmdebstrap chroot, apt from the mirror.

Installed with apt (which fetches its Depends, the distribution's python3.X, from apt's own mirror), used
by a non-root employee (--help, a grant, doctor), upgraded over an edited policy, removed and purged.
The chroot's root file system is cached as a tarball (see tests/e2e/chroot_kit.py); the first run
bootstraps it from the mirror.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devkit.components import require, require_executable
from tests.e2e.chroot_kit import apt_sources_file, debian_chroot, rootfs_tarball

# Builds the packages in build/package and bootstraps into the shared chroot cache: run alone, never
# beside other tests (scripts/test.sh runs these first, one at a time).
pytestmark = pytest.mark.machine_global

EMPLOYEE = "employee"
POLICY = "/etc/xdg/consentry/policy.toml"


def test_deb_installs_runs_as_an_employee_upgrades_and_purges_in_a_clean_debian(
    packages: dict[str, Path],
) -> None:
    require(os.geteuid() == 0, "root (a chroot and its namespaces)", "run the tests as root, as CI does")
    for name, package in (("mmdebstrap", "mmdebstrap"), ("unshare", "util-linux"), ("tar", "tar")):
        require_executable(name, package)
    sources = apt_sources_file()
    require(sources is not None, "an apt source list for Debian 12 (bookworm)", "run on Debian 12, as CI does")
    assert sources is not None
    tarball, _ = rootfs_tarball(sources)

    with debian_chroot(tarball) as chroot:
        # Never saw the build: no interpreter of the build machine, no Python at all before the install.
        assert not chroot.path("/root/.pyenv").exists() and not chroot.path("/usr/bin/python3").exists()
        for key in ("deb", "upgrade_deb"):
            (chroot.path("/tmp") / packages[key].name).write_bytes(packages[key].read_bytes())
        chroot.run("apt-get", "update", "-qq")
        chroot.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", f"/tmp/{packages['deb'].name}")
        assert "install ok installed" in chroot.run("dpkg-query", "-W", "-f=${Status}", "consentry").stdout
        chroot.run("useradd", "--create-home", "--shell", "/bin/sh", EMPLOYEE)

        helped = chroot.as_user(EMPLOYEE, "consentry", "--help")
        assert "consent" in helped.stdout
        granted = chroot.as_user(EMPLOYEE, "consentry", "consent", "grant", "mouse", "--yes")
        assert "mouse" in granted.stdout
        doctor = chroot.as_user(EMPLOYEE, "consentry", "doctor")
        assert POLICY in doctor.stdout and "consent ledger" in doctor.stdout
        vault = chroot.path(f"/home/{EMPLOYEE}/.local/share/consentry/vault.sqlite3")
        assert vault.is_file() and vault.stat().st_mode & 0o077 == 0

        # IT edits the policy; the upgrade keeps the edit and the employee's grant.
        policy = chroot.path(POLICY)
        policy.write_text(policy.read_text(encoding="utf-8") + "# edited by IT\n", encoding="utf-8")
        upgrade = f"/tmp/{packages['upgrade_deb'].name}"
        chroot.run("apt-get", "install", "-y", "-qq", "-o", "Dpkg::Options::=--force-confold", upgrade)
        assert chroot.run("dpkg-query", "-W", "-f=${Version}", "consentry").stdout == "0.1.1"
        assert policy.read_text(encoding="utf-8").endswith("# edited by IT\n")
        assert "mouse" in chroot.as_user(EMPLOYEE, "consentry", "consent", "show").stdout

        chroot.run("dpkg", "--remove", "consentry")
        assert not chroot.path("/opt/consentry").exists()
        assert not chroot.path("/usr/bin/consentry").is_symlink()
        assert policy.is_file()  # a conffile: kept until purge
        chroot.run("dpkg", "--purge", "consentry")
        assert not chroot.path("/etc/xdg/consentry").exists()
        assert not chroot.path("/etc/xdg/autostart/consentry-agent.desktop").exists()
        assert chroot.run("dpkg-query", "-W", "consentry", check=False).returncode != 0
        assert vault.is_file()  # the employee's own data is theirs: a purge of the package leaves it
