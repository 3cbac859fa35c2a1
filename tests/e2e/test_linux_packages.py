"""The .deb and .rpm IT deploys: built by scripts/package.sh (nfpm), installed for real with dpkg.

The .deb is installed on this machine (root only), run from /usr/bin by a non-root employee, reinstalled
and upgraded over an edited policy, removed and purged. Everything it touches is put back by the
fixture's purge. The same package in a clean Debian chroot: test_deb_in_clean_chroot.py.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from devkit.components import require, require_executable
from tests.e2e.package_kit import REPO, as_employee, employee_env, employee_home
from tests.e2e.package_kit import run as _run

# Installs packages into this machine (dpkg, /etc, /usr, systemd units) and builds them in build/package:
# run alone, never beside other tests (scripts/test.sh runs these first, one at a time).
pytestmark = pytest.mark.machine_global

POLICY = Path("/etc/xdg/consentry/policy.toml")
EXPECTED_FILES = [
    "/opt/consentry/bin/consentry",
    "/opt/consentry/bin/python",
    "/usr/bin/consentry",
    "/usr/lib/systemd/user/consentry-agent.service",
    "/etc/xdg/autostart/consentry-agent.desktop",
    "/etc/xdg/autostart/consentry-tray.desktop",
    "/etc/xdg/consentry/policy.toml",
    "/usr/share/doc/consentry/employee.md",
]


CONFFILES = [
    "/etc/xdg/autostart/consentry-agent.desktop",
    "/etc/xdg/autostart/consentry-tray.desktop",
    str(POLICY),
]


def test_rpm_lists_the_application_units_and_marks_the_files_in_etc_config(packages: dict[str, Path]) -> None:
    rpm = require_executable("rpm", "rpm")
    listed = set(_run(rpm, "-qlp", str(packages["rpm"])).stdout.split())
    missing = [name for name in EXPECTED_FILES if name not in listed]
    assert not missing, missing
    assert sorted(_run(rpm, "-qcp", str(packages["rpm"])).stdout.split()) == sorted(CONFFILES)


def test_deb_declares_its_files_in_etc_conffiles_and_depends_on_its_python_and_libc(packages: dict[str, Path]) -> None:
    info = _run("dpkg-deb", "--info", str(packages["deb"])).stdout
    assert "Depends: python3." in info
    assert "libc6 (>= 2." in info
    assert sorted(_run("dpkg-deb", "-I", str(packages["deb"]), "conffiles").stdout.split()) == sorted(CONFFILES)


def test_deb_installs_runs_keeps_edited_policy_and_removes_cleanly(
    packages: dict[str, Path], system_install: None, tmp_path: Path
) -> None:
    _run("dpkg", "-i", str(packages["deb"]))
    for name in EXPECTED_FILES:
        assert Path(name).exists() or Path(name).is_symlink(), name

    # The command IT's users get works from /usr/bin for a non-root employee, with the workstation's
    # dependencies only (the interpreter it runs is the distribution's, readable by everyone).
    with employee_home() as home:
        env = employee_env(home)
        assert shutil.which("consentry", path="/usr/bin") == "/usr/bin/consentry"
        assert "consent" in _run(*as_employee(["/usr/bin/consentry", "--help"], env), env=env).stdout
        _run(*as_employee(["/usr/bin/consentry", "consent", "grant", "mouse", "--yes"], env), env=env)
        doctor = _run(*as_employee(["/usr/bin/consentry", "doctor"], env), env=env)
        assert str(POLICY) in doctor.stdout and "consent ledger" in doctor.stdout
        test_only = _run(*as_employee(["/opt/consentry/bin/python", "-c", "import pytest"], env), env=env, check=False)
        assert test_only.returncode != 0 and "No module named 'pytest'" in test_only.stderr, test_only.stderr

    # IT edits the policy; a reinstall and an upgrade keep the edit (conffile), no prompt.
    edited = POLICY.read_text(encoding="utf-8").replace("retention_days = 30", "retention_days = 14")
    assert edited != POLICY.read_text(encoding="utf-8")
    POLICY.write_text(edited + "# edited by IT\n", encoding="utf-8")
    keep = ("dpkg", "--force-confold", "-i")
    _run(*keep, str(packages["deb"]))
    assert POLICY.read_text(encoding="utf-8").endswith("# edited by IT\n")
    _run(*keep, str(packages["upgrade_deb"]))
    assert "0.1.1" in _run("dpkg-query", "-W", "-f=${Version}", "consentry").stdout
    assert POLICY.read_text(encoding="utf-8").endswith("# edited by IT\n")
    shown = json.loads(
        _run("/usr/bin/consentry", "policy", "show", "--json", env=employee_env(Path("/nonexistent"))).stdout
    )
    assert shown["policy"]["retention_days"] == 14

    # Remove: the application goes, nothing left under /opt; the edited policy stays until purge.
    _run("dpkg", "-r", "consentry")
    assert not Path("/opt/consentry").exists()
    assert not Path("/usr/bin/consentry").exists() and not Path("/usr/bin/consentry").is_symlink()
    assert POLICY.read_text(encoding="utf-8").endswith("# edited by IT\n")
    _run("dpkg", "--purge", "consentry")
    assert not POLICY.exists()


def test_build_refuses_an_interpreter_the_distribution_does_not_ship(tmp_path: Path) -> None:
    """A pyenv/conda/self-built interpreter would be linked from /opt/consentry: the build stops instead."""
    distribution = Path("/usr/bin/python3").resolve()
    require(distribution.is_file(), "the distribution's /usr/bin/python3", "apt-get install python3")
    elsewhere = tmp_path / "pyenv" / "bin" / distribution.name
    elsewhere.parent.mkdir(parents=True)
    shutil.copy2(distribution, elsewhere)  # a real, working interpreter, just not one dpkg installed
    out = tmp_path / "dist"
    env = dict(os.environ, PYTHON=str(elsewhere), PKG_VERSION="0.0.1")
    refused = _run("bash", str(REPO / "scripts" / "package.sh"), str(out), env=env, check=False)
    assert refused.returncode == 1, refused.stderr
    assert "distribution's interpreter (/usr/bin/python3.X)" in refused.stderr
    assert str(elsewhere) in refused.stderr and "PYTHON=/usr/bin/python3" in refused.stderr
    assert not out.exists() or not list(out.glob("consentry*"))


def test_postinst_fails_loudly_when_the_interpreter_is_not_the_distributions(
    packages: dict[str, Path], system_install: None, tmp_path: Path
) -> None:
    """The failure the issue saw: an interpreter in root's home. postinst stops dpkg with the reason."""
    unpacked = tmp_path / "unpacked"
    _run("dpkg-deb", "-R", str(packages["deb"]), str(unpacked))
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    shutil.copy2(Path("/usr/bin/python3").resolve(), private / "python3")
    link = unpacked / "opt" / "consentry" / "bin" / "python3"
    for name in ("python", "python3", Path("/usr/bin/python3").resolve().name):
        (link.parent / name).unlink()
    link.symlink_to(private / "python3")
    for name in ("python", Path("/usr/bin/python3").resolve().name):
        (link.parent / name).symlink_to("python3")
    broken = tmp_path / "consentry_broken.deb"
    _run("dpkg-deb", "-Zzstd", "-b", str(unpacked), str(broken))

    installed = _run("dpkg", "-i", str(broken), check=False)
    assert installed.returncode != 0
    assert f"leads to {private / 'python3'}, not the distribution's /usr/bin/python3.X" in installed.stderr
    status = _run("dpkg-query", "-W", "-f=${Status}", "consentry").stdout
    assert status != "install ok installed", status


def test_lintian_reports_no_error_and_no_warning_beyond_the_justified_overrides(packages: dict[str, Path]) -> None:
    """Every remaining finding is overridden in packaging/linux/lintian-overrides, with its reason there."""
    lintian = require_executable("lintian", "lintian")
    found = _run(lintian, "--display-info", "--tag-display-limit", "0", str(packages["deb"]), check=False)
    findings = [line for line in found.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    serious = [line for line in findings if line[:2] in ("E:", "W:")]
    assert not serious, "\n".join(serious)
    stale = [line for line in findings if "unused-override" in line or "mismatched-override" in line]
    assert not stale, "\n".join(stale)
    assert found.returncode == 0, found.stderr
