"""Ray Data reading a release snapshot: 2 worker processes against 1, on a local Ray cluster.

A release of N records (default 500,000: 4 categories, 500 subjects, 30 days) is built into the release
table (``dir`` catalog, a temporary folder). A local cluster is started the way a team would start one
(``ray start --head`` plus ``ray start --address`` of a second node, one CPU each, so each node runs one
worker process at a time). A driver then reads the snapshot's Parquet files with Ray Data -- every
row decoded in the workers, each block reduced there to its row count and a column sum -- once with
``concurrency=1`` (one worker process) and once with ``concurrency=2`` (both), alternated round by round;
it prints rows/s of each and the median of the per-round ratios.    (target: 2 processes >= 1.5x of 1)

python benchmarks/bench_release_ray.py [--records 500000] [--rounds 5] [--blocks 8]

The snapshot's files (one per category and day, ~4,000 rows each) are read as --blocks read tasks:
with one task per small file, Ray's per-task cost, not reading, is what the figure would show.

Ray is in the [dev] extra. On a machine whose other work takes the second core the ratio shows it:
the figure is only meaningful on an otherwise idle machine with at least 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_release import Rows  # noqa: E402

from devkit.ray_cluster import WAIT_FOR_TWO_NODES, local_cluster  # noqa: E402
from store.releases import ReleaseTable  # noqa: E402

DRIVER = textwrap.dedent(
    """
    import json, statistics, sys, time
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray

    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    WAIT_FOR_TWO_NODES
    files = json.load(open(sys.argv[2]))
    rounds = int(sys.argv[3])
    blocks = int(sys.argv[4])

    def reduce(batch: pa.Table) -> pa.Table:
        # decoded in the worker; only a row count and a sum travel back
        moves = pc.sum(batch["moves"]).as_py() or 0
        return pa.table({"rows": [batch.num_rows], "moves": [moves]})

    def read(concurrency: int) -> tuple[int, float]:
        # Planning (listing the files, reading their footers) is done before the clock starts: it is the
        # driver's work, the same for 1 and 2 workers; what is timed is the workers reading the rows.
        ds = ray.data.read_parquet(files, partitioning=None, concurrency=concurrency, override_num_blocks=blocks)
        out = ds.map_batches(reduce, batch_format="pyarrow", concurrency=concurrency, batch_size=None)
        started = time.perf_counter()
        rows = sum(r["rows"] for r in out.take_all())
        return rows, time.perf_counter() - started

    read(2)  # warm-up: workers started, modules imported on both nodes
    results = {1: [], 2: []}
    for r in range(rounds):
        for c in ((1, 2) if r % 2 == 0 else (2, 1)):
            rows, seconds = read(c)
            results[c].append(rows / seconds)
            print(f"round {r + 1}, {c} worker process(es): {rows:,} rows in {seconds:.2f} s", flush=True)
    ratios = [two / one for one, two in zip(results[1], results[2])]
    print("RESULT " + json.dumps({"one": statistics.median(results[1]), "two": statistics.median(results[2]),
                                   "ratio": statistics.median(ratios), "rows": rows}), flush=True)
    """
).replace("WAIT_FOR_TWO_NODES\n", WAIT_FOR_TWO_NODES.lstrip("\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--blocks",
        type=int,
        default=8,
        help="read tasks per pass (a release has one file per partition; "
        "a task per small file would measure Ray's scheduling, not reading)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-release-ray-") as tmp:
        from store.backends.dir import DirBackend

        folder = Path(tmp) / "store"
        DirBackend(folder / "data").close()
        table = ReleaseTable.open(None, data_dir=folder)
        rows = Rows(args.records, 500, 30).for_release("ray", table.aliases("ray"))
        table.build("ray", rows)
        files = table.data_files("ray")
        table.close()
        listing = Path(tmp) / "files.json"
        listing.write_text(json.dumps(files))
        print(f"release: {rows.num_rows:,} rows in {len(files)} Parquet files")

        with local_cluster(object_store_bytes=200_000_000) as (address, env):
            done = subprocess.run(
                [sys.executable, "-c", DRIVER, address, str(listing), str(args.rounds), str(args.blocks)],
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
            )
    for line in done.stdout.splitlines():
        if not line.startswith("RESULT "):
            print(line)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not result:
        sys.exit(f"the driver failed:\n{done.stderr[-3000:]}")
    figures = json.loads(result[-1].removeprefix("RESULT "))
    verdict = "OK" if figures["ratio"] >= 1.5 else "BELOW TARGET"
    print(
        f"Ray Data, 1 worker process: {figures['one']:,.0f} rows/s; 2 worker processes: {figures['two']:,.0f} rows/s; "
        f"median ratio {figures['ratio']:.2f}x (target >= 1.5x) {verdict}; os.cpu_count() = {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
