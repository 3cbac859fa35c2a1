"""README's main command: the whole flow runs on embedded defaults and leaves its artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--out", str(out), "--seconds", "14"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "shipped:" in done.stdout and "Ledger OK" in done.stdout
    dataset = out / "dataset"
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["files"]
    tables = [pq.read_table(path) for path in (dataset / "data").glob("*.parquet")]
    assert tables and sum(t.num_rows for t in tables) > 0
    assert (out / "employee-home" / "vault.sqlite3").stat().st_mode & 0o077 == 0
    # Nothing of the demo leaked into a real home: it set its own CONSENTRY_HOME.
    assert "employee-home" in done.stdout
