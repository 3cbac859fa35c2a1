"""CLI start-up in a production install: read commands against ``python -c "import click"``.

What an employee waits for is a fresh process of the installed ``consentry``, so this measures
exactly that: it builds a throw-away virtual environment with ``pip install .`` (no extras, no test
dependencies; pip byte-compiles as it does for IT's package), creates a vault in a temporary home,
and times each command as a fresh process. The baseline, ``python -c "import click"`` with the same
interpreter, is measured in the same run; the target is a ratio, so a slow or busy host does not
change the verdict.

    python benchmarks/bench_cli.py [--runs 20] [--venv DIR]

``--venv DIR`` reuses (or creates once) that environment instead of a temporary one.
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

TARGET_RATIO = 2.5  # `consentry status` vs `python -c "import click"` (issue 8)
ROOT = Path(__file__).resolve().parent.parent
_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # 32 zero bytes, base64
POLICY = f"""
retention_days = 30
excluded_apps = ["hr-portal"]
[store]
url = "https://consentry-store.corp.example:8443"
public_key = "{_KEY}"
[stewards]
approvals_required = 1
[stewards.keys]
alice = "{_KEY}"
"""


def production_install(venv: Path) -> Path:
    """A venv with ``pip install .`` of this checkout and nothing else; returns its interpreter."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "consentry").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True)
        if pip.returncode != 0:
            sys.exit(f"pip install . failed:\n{pip.stderr}")
    return python


def medians_ms(commands: dict[str, list[str]], env: dict[str, str], cwd: Path, runs: int) -> dict[str, float]:
    """Median wall time of each command as a fresh process; the commands take turns in every round, so
    a change in the host's load during the run weighs on the baseline and the commands alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            t0 = time.perf_counter()
            subprocess.run(args, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--venv", type=Path, default=None, help="reuse or create the production venv here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        python = production_install(args.venv or tmp / "venv")
        consentry = str(python.parent / "consentry")
        # Run from an empty folder: the checkout on sys.path would shadow the installed package.
        env = {
            **os.environ,
            "CONSENTRY_HOME": str(tmp / "home"),
            "CONSENTRY_POLICY": str(tmp / "policy.toml"),
            "CONSENTRY_KEYSTORE": "file",
        }
        env.pop("PYTHONPATH", None)
        # A deployed machine has IT's policy file: read commands validate it once per content (cache).
        (tmp / "policy.toml").write_text(POLICY)
        subprocess.run(
            [consentry, "consent", "grant", "mouse", "--yes"], env=env, cwd=tmp, check=True, capture_output=True
        )
        baseline = 'python -c "import click"'
        medians = medians_ms(
            {
                baseline: [str(python), "-c", "import click"],
                "consentry status": [consentry, "status"],
                "consentry consent show": [consentry, "consent", "show"],
                "consentry mydata": [consentry, "mydata"],
                "consentry batches list": [consentry, "batches", "list"],
                "consentry --help": [consentry, "--help"],
            },
            env,
            tmp,
            args.runs,
        )
    base = medians[baseline]
    print(f"CLI start-up in a production install (pip install ., no extras), median of {args.runs} fresh processes")
    print(f'target: consentry status <= {TARGET_RATIO}x python -c "import click"')
    for name, ms in medians.items():
        verdict = ""
        if name == "consentry status":
            verdict = "  ok" if ms / base <= TARGET_RATIO else "  OVER TARGET"
        print(f"  {name:<28} {ms:7.1f} ms   {ms / base:4.2f}x import click{verdict}")


if __name__ == "__main__":
    main()
