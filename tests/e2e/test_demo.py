"""README's main command: the whole flow runs on embedded defaults and leaves its artifacts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agent.cli import demo_display
from devkit.components import require


@pytest.mark.parametrize("input_mode", ["x11", "replay"])
def test_demo_runs_the_whole_flow(tmp_path: Path, input_mode: str) -> None:
    if input_mode == "x11":
        require(
            demo_display.available(),
            "Xvfb, openbox, xterm, xdotool and xprop",
            "apt-get install xvfb openbox xterm xdotool x11-utils",
        )
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--out", str(out), "--seconds", "14", "--input", input_mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "shipped:" in done.stdout and "Ledger OK" in done.stdout and "Log OK" in done.stdout
    if input_mode == "x11":
        assert "files containing the typed password 'hunter2-Secret!': 0" in done.stdout
        assert not demo_display.files_containing(out, b"hunter2", skip=("display.log",))
    dataset = out / "dataset"
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["files"]
    rows = {path.stem: pq.read_table(path).num_rows for path in (dataset / "data").glob("*.parquet")}
    assert rows.get("keyboard", 0) > 0 and rows.get("mouse", 0) > 0, rows
    assert (out / "employee-home" / "vault.sqlite3").stat().st_mode & 0o077 == 0
    if importlib.util.find_spec("pyiceberg") is not None:  # the governed release path (issue 15)
        assert "Approved. Release" in done.stdout and "snapshot tag release/" in done.stdout
        assert "Recorded run demo-rhythm-v1" in done.stdout
        built = re.search(r"the release holds (\d+) rows of 1 subject", done.stdout)
        assert built and int(built.group(1)) > 0, done.stdout[-3000:]  # read back from the table
        assert "the release now holds 0 rows" in done.stdout  # after the employee erased everything
        assert "1 dataset release that held your data was rewritten without it" in done.stdout
        assert "demo-rhythm-v1" in done.stdout and "trained on erased data: retrain or unlearn" in done.stdout
