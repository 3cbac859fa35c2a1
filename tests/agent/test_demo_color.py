"""``consentry demo`` colours its output only on a terminal, and never when NO_COLOR is set.

The demo runs for real as a subprocess, on a real pseudo-terminal or a pipe. Its ``--out`` holds a
file where the store's folder should be, so it stops after its first step and styled command line.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

ESC = b"\x1b["
ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_") and k not in ("NO_COLOR", "TERM")}
    return {**env, "TERM": "xterm-256color", **extra}


def _failing_demo_args(tmp_path: Path) -> list[str]:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "store").write_text("not a folder\n")  # `store keygen --data out/store` fails at once
    return [sys.executable, "-m", "agent", "demo", "--out", str(out), "--input", "replay"]


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    main, secondary = os.openpty()
    proc = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=ROOT)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError as exc:  # EIO: the child closed the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=120) == 1
    return b"".join(chunks)


def test_demo_on_a_terminal_is_coloured(tmp_path: Path) -> None:
    """The control: on a terminal without NO_COLOR the steps are styled (so the tests below can fail)."""
    output = _run_on_a_terminal(_failing_demo_args(tmp_path), _env())
    assert b"consentry store keygen" in output, output
    assert ESC in output


@pytest.mark.parametrize("value", ["1", "yes"])
def test_demo_honours_no_color_on_a_terminal(tmp_path: Path, value: str) -> None:
    output = _run_on_a_terminal(_failing_demo_args(tmp_path), _env(NO_COLOR=value))
    assert b"consentry store keygen" in output, output
    assert ESC not in output, output


def test_demo_prints_no_colour_into_a_pipe(tmp_path: Path) -> None:
    done = subprocess.run(_failing_demo_args(tmp_path), capture_output=True, env=_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 1
    assert b"consentry store keygen" in done.stdout, done.stdout + done.stderr
    assert ESC not in done.stdout + done.stderr
