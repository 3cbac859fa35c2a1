"""Fixtures of the end-to-end package tests: the packages are built once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.components import in_ci, require, require_executable
from tests.e2e.package_kit import build, run


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 0.1.0 and an upgrade 0.1.1 of both packages, from one staged environment."""
    require_executable("dpkg-deb", "dpkg")
    out = tmp_path_factory.mktemp("dist")
    deb, rpm = build(out, "0.1.0", reuse_stage=False)
    upgrade_deb, _ = build(out, "0.1.1", reuse_stage=True)
    return {"deb": deb, "rpm": rpm, "upgrade_deb": upgrade_deb}


def _installed() -> bool:
    return run("dpkg-query", "-W", "-f=${Status}", "consentry", check=False).stdout.startswith("install ok")


@pytest.fixture
def system_install() -> Iterator[None]:
    """Root on a dpkg system with no Consentry package installed; purged again afterwards."""
    require_executable("dpkg", "dpkg")
    require(os.geteuid() == 0, "root (dpkg -i installs into the system)", "run the tests as root, as CI does")
    if _installed():
        if not in_ci():
            pytest.skip("a consentry package is already installed here; not touching it outside CI")
        run("dpkg", "--purge", "consentry")
    yield
    run("dpkg", "--purge", "consentry", check=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that builds or installs the packages changes the machine: it must say so (machine_global)."""
    for item in items:
        uses = {"packages", "system_install"} & set(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("machine_global") is None:
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))}: mark it machine_global")
