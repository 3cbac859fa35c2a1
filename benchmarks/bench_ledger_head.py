"""What the signed ledger head costs, each against a baseline measured in the same run; prints ratios.

1  append   one consent act (a pause entry in its own transaction, head signed and written twice
            with fsync) vs the same append through a bare Ledger on a plain connection (no head)
2  read     reading the consent state (vault.consent: fold the ledger, read and verify the head)
            vs folding the ledger alone (derive_snapshot)

python benchmarks/bench_ledger_head.py [--entries 200] [--rounds 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vault.consent import derive_snapshot  # noqa: E402
from vault.ledger import Ledger  # noqa: E402
from vault.paths import Layout  # noqa: E402
from vault.policy import MachinePolicy  # noqa: E402
from vault.schema import connect, create_file, migrate  # noqa: E402
from vault.vault import Vault  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _median_us(fn: Callable[[int], None], rounds: int) -> float:
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200, help="ledger length before measuring reads")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    os.environ["CONSENTRY_KEYSTORE"] = "file"
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "home")
        bare_path = Path(tmp) / "bare.sqlite3"
        create_file(bare_path)
        bare = connect(bare_path)
        migrate(bare, "2026-01-01T00:00:00.000000Z")
        bare_ledger = Ledger(bare)
        with Vault.open(layout) as vault:

            def baseline_append(i: int) -> None:
                bare.execute("BEGIN IMMEDIATE")
                bare_ledger.append("pause", {"until": None, "method": "cli"}, T0 + timedelta(seconds=i))
                bare.execute("COMMIT")

            def head_append(i: int) -> None:
                with vault.transaction():
                    vault.ledger.append("pause", {"until": None, "method": "cli"}, T0 + timedelta(seconds=i))

            base = _median_us(baseline_append, args.rounds)
            signed = _median_us(head_append, args.rounds)
            print(f"1 append: baseline {base:,.0f} us, with signed head {signed:,.0f} us, ratio {signed / base:.1f}x")

            while vault.ledger.head()[0] < args.entries:
                head_append(0)
            policy = MachinePolicy()
            fold = _median_us(lambda _: derive_snapshot(vault.ledger.entries(), policy), args.rounds)
            checked = _median_us(lambda _: vault.consent(policy), args.rounds)
            print(
                f"2 read ({vault.ledger.head()[0]} entries): fold only {fold:,.0f} us, "
                f"with head check {checked:,.0f} us, ratio {checked / fold:.2f}x"
            )
        bare.close()


if __name__ == "__main__":
    main()
