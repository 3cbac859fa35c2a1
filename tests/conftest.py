"""Shared fixtures. Every test gets its own CONSENTRY_HOME so nothing touches a real home."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.paths import Layout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Consentry home; also exported so subprocesses (the CLI, the agent) use it."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONSENTRY_HOME", str(home))
    monkeypatch.setenv("CONSENTRY_POLICY", str(tmp_path / "policy.toml"))
    monkeypatch.setenv("CONSENTRY_KEYSTORE", "file")
    return home


@pytest.fixture
def layout(home: Path) -> Layout:
    return Layout(home)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    """Where this test's machine policy lives (absent = embedded defaults)."""
    return tmp_path / "policy.toml"
