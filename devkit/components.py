"""Real components that some tests need (Xvfb, xdotool, PostgreSQL): skip on a laptop, fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str, how_to_get_it: str) -> None:
    """Skip (with the reason) when ``what`` is missing, except under CI=true, where it is a failure."""
    if available:
        return
    message = f"{what} is not available here ({how_to_get_it})"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_executable(name: str, package: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"the {name!r} executable", f"apt-get install {package}")
    assert path is not None
    return path
