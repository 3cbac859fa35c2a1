"""``consentry doctor``'s check of every stored record vs reading the same records for ``mydata``.

A vault of ``--days`` days of one-minute keyboard and mouse windows (86,400 records for 30 days: a
month at the default retention). ``vault.integrity.check`` authenticates every secret, data key,
record and held batch; the baseline is ``Vault.read_windows`` (what the page and sealing do with the
same records: decrypt + parse). Alternated, same run; the ratio is check / read (target <= 1.0: the
doctor is never slower than looking at one's data).

    python benchmarks/bench_doctor.py [--days 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CONSENTRY_KEYSTORE", "file")

from devkit.factories import grant, keyboard_window, mouse_window  # noqa: E402
from protocol.categories import Category  # noqa: E402
from vault import integrity  # noqa: E402
from vault.paths import Layout  # noqa: E402
from vault.vault import Vault  # noqa: E402


def fill(vault: Vault, days: int) -> int:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    t0 = int(start.timestamp())
    keys = grant(vault, Category.KEYBOARD, start - timedelta(minutes=1))
    mouse = grant(vault, Category.MOUSE, start - timedelta(minutes=1))
    minutes = days * 1440
    for chunk in range(0, minutes, 2000):
        vault.write_windows(
            [
                w
                for i in range(chunk, min(chunk + 2000, minutes))
                for w in (keyboard_window(t0 + 60 * i, keys), mouse_window(t0 + 60 * i, mouse))
            ]
        )
    return vault.count_windows()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Vault.open(Layout(Path(tmp) / "home")) as vault:
        records = fill(vault, args.days)
        checks: list[float] = []
        reads: list[float] = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            report = integrity.check(vault)
            checks.append(time.perf_counter() - started)
            assert report.ok and report.records == records
            started = time.perf_counter()
            assert len(vault.read_windows()) == records
            reads.append(time.perf_counter() - started)
    check, read = statistics.median(checks), statistics.median(reads)
    print(f"records: {records:,} ({args.days} days of keyboard + mouse, one-minute windows)")
    print(f"  doctor: authenticate every record, key, secret : {check:6.2f} s  ({records / check:,.0f} records/s)")
    print(f"  baseline: read_windows (decrypt + parse)       : {read:6.2f} s  ({records / read:,.0f} records/s)")
    print(f"  ratio check/read (median): {check / read:.2f}   target <= 1.00")


if __name__ == "__main__":
    main()
