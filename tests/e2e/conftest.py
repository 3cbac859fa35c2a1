"""Fixtures of the end-to-end package tests: the packages are built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.components import require_executable
from tests.e2e.package_kit import build


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 0.1.0 and an upgrade 0.1.1 of both packages, from one staged environment."""
    require_executable("dpkg-deb", "dpkg")
    out = tmp_path_factory.mktemp("dist")
    deb, rpm = build(out, "0.1.0", reuse_stage=False)
    upgrade_deb, _ = build(out, "0.1.1", reuse_stage=True)
    return {"deb": deb, "rpm": rpm, "upgrade_deb": upgrade_deb}
