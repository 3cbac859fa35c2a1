"""CLI latency: `consentry status` and `consentry consent grant … --yes` against `python -c pass`.

Each command runs as a fresh process (what an employee waits for), in a temporary home with a vault
that already exists. Prints the medians, the ratio to bare interpreter start-up, and the target.
The package is byte-compiled first, as ``pip install`` does: with an editable install and
PYTHONDONTWRITEBYTECODE set, every run would otherwise recompile the sources it imports.

    python benchmarks/bench_cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 150.0


def wall_ms(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "agent"), str(root / "vault")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CONSENTRY_HOME": str(Path(tmp) / "home"),
            "CONSENTRY_POLICY": str(Path(tmp) / "policy.toml"),
            "CONSENTRY_KEYSTORE": "file",
        }
        cli = [sys.executable, "-m", "agent"]
        subprocess.run([*cli, "consent", "grant", "mouse", "--yes"], env=env, check=True, stdout=subprocess.DEVNULL)
        base = wall_ms([sys.executable, "-c", "pass"], env, args.runs)
        rows = [
            ("python -c pass", base),
            ("consentry status", wall_ms([*cli, "status"], env, args.runs)),
            (
                "consentry consent grant mouse --yes",
                wall_ms([*cli, "consent", "grant", "mouse", "--yes"], env, args.runs),
            ),
            ("consentry consent show", wall_ms([*cli, "consent", "show"], env, args.runs)),
        ]
    print(f"CLI wall time, median of {args.runs} fresh processes (target: median <= {TARGET_MS:.0f} ms)")
    for name, ms in rows:
        verdict = "" if name.startswith("python") else ("  ok" if ms <= TARGET_MS else "  OVER TARGET")
        print(f"  {name:<38} {ms:7.1f} ms   {ms / base:5.1f}x python start-up{verdict}")


if __name__ == "__main__":
    main()
