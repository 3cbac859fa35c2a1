"""README's main command: the whole flow runs on embedded defaults and leaves its artifacts."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
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


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` and their command lines, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if ppid == pid:
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_demo_told_to_stop_stops_its_store_and_agent(tmp_path: Path, signum: int) -> None:
    """`timeout`, a service manager or `kill` stop the demo with SIGTERM, `kill -9` or the OOM killer with
    SIGKILL: its store and agent stop with it rather than keep a port and the employee's vault open."""

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--seconds",
            "60",
            "--input",
            "replay",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while not any(" agent run" in c for c in _children(demo.pid).values()):
            assert demo.poll() is None and time.monotonic() < deadline, "the demo never started its agent"
            time.sleep(0.1)
        children = _children(demo.pid)
        assert any(" store serve" in c for c in children.values()), children
        demo.send_signal(signum)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 30
        while [p for p in children if Path(f"/proc/{p}").exists()] and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {p: c for p, c in children.items() if Path(f"/proc/{p}").exists()}
        assert not left, f"still running after the demo stopped: {left}"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in children:  # never leave them running for the next test, whatever failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
