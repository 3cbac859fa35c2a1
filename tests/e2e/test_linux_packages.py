"""The .deb and .rpm IT deploys: built by scripts/package.sh (nfpm), installed for real with dpkg.

The .deb is installed on this machine (root only), run from /usr/bin, reinstalled and upgraded over an
edited policy, removed and purged. Everything it touches is put back by the fixture's purge.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import in_ci, require, require_executable

REPO = Path(__file__).resolve().parents[2]
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


def _run(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1500)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _installed() -> bool:
    return _run("dpkg-query", "-W", "-f=${Status}", "consentry", check=False).stdout.startswith("install ok")


def _build(out: Path, version: str, reuse_stage: bool) -> tuple[Path, Path]:
    env = dict(os.environ, PKG_VERSION=version, PKG_REUSE_STAGE="1" if reuse_stage else "0")
    _run("bash", str(REPO / "scripts" / "package.sh"), str(out), env=env)
    debs = sorted(out.glob(f"consentry_{version}_*.deb"))
    rpms = sorted(out.glob(f"consentry-{version}-*.rpm"))
    assert len(debs) == 1 and len(rpms) == 1, sorted(p.name for p in out.iterdir())
    return debs[0], rpms[0]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 0.1.0 and an upgrade 0.1.1 of both packages, from one staged environment."""
    require_executable("dpkg-deb", "dpkg")
    out = tmp_path_factory.mktemp("dist")
    deb, rpm = _build(out, "0.1.0", reuse_stage=False)
    upgrade_deb, _ = _build(out, "0.1.1", reuse_stage=True)
    return {"deb": deb, "rpm": rpm, "upgrade_deb": upgrade_deb}


@pytest.fixture
def system_install() -> Iterator[None]:
    """Root on a dpkg system with no Consentry package installed; purged again afterwards."""
    require_executable("dpkg", "dpkg")
    require(os.geteuid() == 0, "root (dpkg -i installs into the system)", "run the tests as root, as CI does")
    if _installed():
        if not in_ci():
            pytest.skip("a consentry package is already installed here; not touching it outside CI")
        _run("dpkg", "--purge", "consentry")
    yield
    _run("dpkg", "--purge", "consentry", check=False)


def test_rpm_lists_the_application_units_and_policy_as_config(packages: dict[str, Path]) -> None:
    rpm = require_executable("rpm", "rpm")
    listed = set(_run(rpm, "-qlp", str(packages["rpm"])).stdout.split())
    missing = [name for name in EXPECTED_FILES if name not in listed]
    assert not missing, missing
    assert _run(rpm, "-qcp", str(packages["rpm"])).stdout.split() == [str(POLICY)]


def test_deb_declares_the_policy_a_conffile_and_depends_on_its_python(packages: dict[str, Path]) -> None:
    info = _run("dpkg-deb", "--info", str(packages["deb"])).stdout
    assert "Depends: python3." in info
    assert _run("dpkg-deb", "-I", str(packages["deb"]), "conffiles").stdout.split() == [str(POLICY)]


def test_deb_installs_runs_keeps_edited_policy_and_removes_cleanly(
    packages: dict[str, Path], system_install: None, tmp_path: Path
) -> None:
    _run("dpkg", "-i", str(packages["deb"]))
    for name in EXPECTED_FILES:
        assert Path(name).exists() or Path(name).is_symlink(), name

    # The command IT's users get works from /usr/bin, with the workstation's dependencies only.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CONSENTRY_HOME": str(tmp_path / "home"),
        "CONSENTRY_KEYSTORE": "file",
        "LANG": "C.UTF-8",
    }
    assert shutil.which("consentry", path="/usr/bin") == "/usr/bin/consentry"
    assert "consent" in _run("/usr/bin/consentry", "--help", env=env).stdout
    _run("/usr/bin/consentry", "consent", "grant", "mouse", "--yes", env=env)
    doctor = _run("/usr/bin/consentry", "doctor", env=env)
    assert str(POLICY) in doctor.stdout and "consent ledger" in doctor.stdout
    test_only = _run("/opt/consentry/bin/python", "-c", "import pytest", env=env, check=False)
    assert test_only.returncode != 0, "the package must not carry test dependencies"

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
    shown = json.loads(_run("/usr/bin/consentry", "policy", "show", "--json", env=env).stdout)
    assert shown["policy"]["retention_days"] == 14

    # Remove: the application goes, nothing left under /opt; the edited policy stays until purge.
    _run("dpkg", "-r", "consentry")
    assert not Path("/opt/consentry").exists()
    assert not Path("/usr/bin/consentry").exists() and not Path("/usr/bin/consentry").is_symlink()
    assert POLICY.read_text(encoding="utf-8").endswith("# edited by IT\n")
    _run("dpkg", "--purge", "consentry")
    assert not POLICY.exists()
