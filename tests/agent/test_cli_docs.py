"""Every command has help, and docs/cli.md is exactly what --help says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.cli.docgen import _walk
from agent.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_every_command_has_help_text() -> None:
    for path, text in _walk(cli, ["consentry"], None):
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        assert body.strip() and not body.strip().startswith("Options:"), f"{' '.join(path)} has no help text"


def test_cli_reference_matches_help() -> None:
    # A fresh interpreter, as a user's shell: click caches help options on commands other tests invoked.
    fresh = subprocess.run(
        [sys.executable, "-m", "agent.cli.docgen"], capture_output=True, text=True, check=True, cwd=DOC.parent.parent
    ).stdout
    assert DOC.read_text() == fresh, "docs/cli.md is stale: run python -m agent.cli.docgen > docs/cli.md"
