"""``consentry mydata`` at any vault size, in a production install: time of the default view, memory of ``--all``.

For each size (10k, 100k and 1M records by default) a vault is filled with one-minute keyboard and
mouse windows ending now (1M records: about 11 months, under a policy keeping 10 years), written
through the vault's own batch API (``Vault.write_windows``, 5,000 records a transaction). Then, with
the ``consentry`` of a throw-away venv made by ``pip install .`` (non-editable, no extras: what IT
installs), run as fresh processes from an empty folder:

- default ``consentry mydata`` (the latest day, 100 records a page) against the baseline
  ``python -c "import click"`` of the same interpreter, the two alternated round by round; target
  ratio <= 3 at every size (issue 17 section 3: an employee waits no longer at 1M records than at 10k);
- peak RSS of ``consentry mydata --json --all`` (every record, streamed), read from the kernel's
  rusage of that one process; target <= 100 MB at 1M.

    python benchmarks/bench_mydata.py [--sizes 10000,100000,1000000] [--runs 9] [--venv DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CONSENTRY_KEYSTORE", "file")

from benchmarks.bench_cli import production_install  # noqa: E402
from protocol.categories import Category, KeyClass, MouseButton  # noqa: E402
from protocol.windows import KeyboardWindow, MouseWindow  # noqa: E402
from vault import consent_ops  # noqa: E402
from vault.paths import Layout  # noqa: E402
from vault.policy import load_policy  # noqa: E402
from vault.vault import Vault  # noqa: E402

TARGET_RATIO = 3.0
TARGET_RSS_MB = 100.0
WRITE_BATCH = 5_000
POLICY = "retention_days = 3650\n"  # keep every record of the 1M vault (about 11 months)


def fill(home: Path, policy_file: Path, size: int) -> float:
    """A vault of ``size`` one-minute windows (keyboard and mouse alternating) ending now; seconds taken."""
    t0 = time.perf_counter()
    policy = load_policy(policy_file)
    minutes = (size + 1) // 2
    end = int(time.time()) // 60 * 60 - 60
    first = end - minutes * 60
    with Vault.open(Layout(home)) as vault:
        granted_at = datetime.fromtimestamp(first - 60, UTC)
        receipts = {
            c: consent_ops.grant(vault, policy, c, method="api", confirmation="yes-flag", now=granted_at)[0].receipt_id
            for c in (Category.KEYBOARD, Category.MOUSE)
        }
        batch: list[KeyboardWindow | MouseWindow] = []
        for i in range(size):
            start = first + (i // 2) * 60
            batch.append(
                _keyboard(start, receipts[Category.KEYBOARD], i)
                if i % 2 == 0
                else _mouse(start, receipts[Category.MOUSE], i)
            )
            if len(batch) == WRITE_BATCH:
                vault.write_windows(batch)
                batch = []
        if batch:
            vault.write_windows(batch)
        assert vault.count_windows() == size
    return time.perf_counter() - t0


def _keyboard(start: int, receipt_id: str, i: int) -> KeyboardWindow:
    return KeyboardWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        key_counts={KeyClass.LETTER: 120 + i % 50, KeyClass.SPACE: 20, KeyClass.EDITING: 6 + i % 4},
        iki_histogram=(3, 20, 40, 30, 20, 12, 6, 3, 2),
        bursts=9,
        longest_burst=41,
        pauses=2,
        correction_ratio=0.04,
    )


def _mouse(start: int, receipt_id: str, i: int) -> MouseWindow:
    return MouseWindow(
        start=start,
        end=start + 60,
        receipt_id=receipt_id,
        clicks={MouseButton.LEFT: 4 + i % 7, MouseButton.RIGHT: 1},
        scroll_steps=12,
        moves=300 + i % 90,
        distance_px=5123.5,
        idle_seconds=21.5,
    )


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process; output discarded."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[-3:])} failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vault sizes in records, comma-separated")
    parser.add_argument("--runs", type=int, default=9, help="alternated rounds of the timing per size")
    parser.add_argument("--venv", type=Path, default=None, help="reuse or create the production venv here")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    print(f"consentry mydata in a production install (pip install ., no extras); {args.runs} alternated rounds")
    print(
        f'targets: default mydata <= {TARGET_RATIO:g}x python -c "import click"; mydata --json --all <= {TARGET_RSS_MB:g} MB at 1M'
    )
    with tempfile.TemporaryDirectory(prefix="bench-mydata-") as tmp_name:
        tmp = Path(tmp_name)
        python = production_install(args.venv or tmp / "venv")
        consentry = str(python.parent / "consentry")
        empty = tmp / "cwd"  # the checkout on sys.path would shadow the installed package
        empty.mkdir()
        policy_file = tmp / "policy.toml"
        policy_file.write_text(POLICY)
        for size in sizes:
            home = tmp / f"home-{size}"
            built = fill(home, policy_file, size)
            env = {**os.environ, "CONSENTRY_HOME": str(home), "CONSENTRY_POLICY": str(policy_file)}
            env.pop("PYTHONPATH", None)
            _run([consentry, "mydata"], env, empty)  # warm the policy cache and the page cache once
            times: dict[str, list[float]] = {"baseline": [], "mydata": []}
            for round_number in range(args.runs):
                sides = [("baseline", [str(python), "-c", "import click"]), ("mydata", [consentry, "mydata"])]
                for name, argv in sides if round_number % 2 == 0 else sides[::-1]:
                    times[name].append(_run(argv, env, empty)[0])
            base, ours = statistics.median(times["baseline"]), statistics.median(times["mydata"])
            wall_all, rss_all = _run([consentry, "mydata", "--json", "--all"], env, empty)
            ratio = ours / base
            rss_verdict = "" if size < 1_000_000 else ("  ok" if rss_all <= TARGET_RSS_MB else "  OVER TARGET")
            print(
                f"  {size:>9,} records (built in {built:5.1f} s through Vault.write_windows): "
                f"import click {base * 1000:6.1f} ms, mydata {ours * 1000:6.1f} ms, ratio {ratio:4.2f}"
                f"{'  ok' if ratio <= TARGET_RATIO else '  OVER TARGET'}; "
                f"mydata --json --all {wall_all:6.1f} s, peak RSS {rss_all:5.1f} MB{rss_verdict}"
            )
            sys.stdout.flush()
            for path in home.rglob("*"):  # keep the disk use to one vault at a time
                if path.is_file():
                    path.unlink()


if __name__ == "__main__":
    main()
