"""The code stays typed and lint-clean: mypy on agent/ and vault/, ruff on everything Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_mypy_is_clean_on_agent_and_vault() -> None:
    done = _run("mypy")  # packages and settings come from pyproject.toml
    assert done.returncode == 0, done.stdout[-4000:]


def test_ruff_lint_and_format_are_clean() -> None:
    lint = _run("ruff", "check", "agent", "vault", "protocol", "store", "kit", "admin", "devkit", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = _run(
        "ruff",
        "format",
        "--check",
        "agent",
        "vault",
        "protocol",
        "store",
        "kit",
        "admin",
        "devkit",
        "tests",
        "benchmarks",
    )
    assert fmt.returncode == 0, fmt.stdout[-4000:]
