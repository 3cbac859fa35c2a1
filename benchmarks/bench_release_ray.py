"""Ray Data reading a release snapshot: 2 worker processes against 1, on a local Ray cluster.

A release of N records (default 2,000,000: 4 categories, 500 subjects, 30 days) is built into the release
table (``dir`` catalog, a temporary folder). A local cluster is started the way a team would start one
(``ray start --head`` plus ``ray start --address`` of a second node, one CPU each, so each node runs one
worker process at a time). A driver then reads the snapshot's Parquet files with Ray Data as --blocks
read tasks -- every row decoded in the workers, each block reduced there to its row count and a column
sum, the results streamed back -- once with ``concurrency=1`` (one read task at a time) and once with no
cap, so the cluster's two CPUs (one per node) are the only limit: both worker processes, never more;
alternated round by round. The clock covers the whole pass a
team pays: ``read_parquet`` (planning, footers), the read, the last result. It prints rows/s of each,
the median of the per-round ratios, the busy time of each worker per pass (a straggler shows there),
and where the machine's CPU went during the timed passes.      (target: 2 processes >= 1.5x of 1)

python benchmarks/bench_release_ray.py [--records 2000000] [--rounds 5] [--blocks 8] [--reader v1|v2]

Why these settings (measured; benchmarks/README.md has the figures):
- ``--reader v1`` (``DataContext.use_datasource_v2 = False``): Ray 2.60's default Parquet reader (V2)
  starts a pool of 32 footer-reading actors -- 32 new worker processes -- on every pass and ignores
  ``override_num_blocks``: a release of this size is packed into one 128 MiB read task, so a second
  worker has nothing to do. ``--reader v2`` shows it, sized for this cluster (2 footer actors, bins of
  1/--blocks of the release through Ray's RAY_DATA_PARQUET_* variables).
- 2M records: one pass decodes ~1 s of CPU; at 500k the fixed cost of a pass (~0.2 s) is a third of it.
- 8 blocks: equal shares for 2 workers (4 tasks each) without a task per small file (124 files).

- Ray Data's backpressure: only ``ConcurrencyCapBackpressurePolicy`` (the one that enforces
  ``concurrency=1``); ``ResourceBudgetBackpressurePolicy`` and ``DownstreamCapacityBackpressurePolicy`` are
  left out through ``DataContext.set_config("backpressure_policies.enabled", ...)``, for both passes. On a
  2-CPU cluster with one small read stage either of them, or a cap of ``concurrency=2``, made Ray Data 2.60
  run the read tasks one after the other: "two at once" was 0.00-0.14 s a pass while each pass decoded for
  ~1.1 s, so the 2-worker pass was no faster (0.98x). The 1-worker pass is unchanged by this (its tasks
  never overlap: the cap still holds it to one); "two at once" is printed for every pass to show both.

Ray is in the [dev] extra. On a machine whose other work takes the second core the ratio shows it (the
CPU table names it): the figure is only meaningful on an otherwise idle machine with at least 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow.parquet as pq  # noqa: E402
from bench_release import Rows  # noqa: E402

from devkit.ray_cluster import WAIT_FOR_TWO_NODES, local_cluster  # noqa: E402
from store.releases import ReleaseTable  # noqa: E402

DRIVER = textwrap.dedent(
    """
    import json, os, statistics, sys, time
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray

    files = json.load(open(sys.argv[2]))
    rounds, blocks, reader = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    v2_env = json.loads(sys.argv[6])  # read by the listing task in a worker: passed to every worker
    os.environ.update(v2_env)  # and read on the driver when the read is planned
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": v2_env} if v2_env else None)
    WAIT_FOR_TWO_NODES
    ray.data.DataContext.get_current().use_datasource_v2 = reader == "v2"
    ray.data.DataContext.get_current().enable_progress_bars = False
    from ray.data._internal.execution.backpressure_policy import ConcurrencyCapBackpressurePolicy
    # see the module docstring: the two budget policies serialize the read tasks on a 2-CPU cluster
    ray.data.DataContext.get_current().set_config("backpressure_policies.enabled", [ConcurrencyCapBackpressurePolicy])

    def reduce(batch: pa.Table) -> pa.Table:
        # decoded in the worker; only a row count and a sum travel back
        moves = pc.sum(batch["moves"]).as_py() or 0
        return pa.table({"rows": [batch.num_rows], "moves": [moves]})

    def read(concurrency: int) -> tuple[int, list[int], float, float, float]:
        # The whole pass is timed: what a team pays each time it reads the release.
        wall = time.time()
        started = time.perf_counter()
        # 2 workers: no cap, the cluster's 2 CPUs (one per node) are the limit; 1 worker: a cap of 1
        cap = None if concurrency == 2 else concurrency
        ds = ray.data.read_parquet(files, partitioning=None, concurrency=cap, override_num_blocks=blocks)
        out = ds.map_batches(reduce, batch_format="pyarrow", concurrency=cap, batch_size=None)
        per_block = []
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            per_block += batch["rows"].to_pylist()
        seconds = time.perf_counter() - started
        return sum(per_block), per_block, seconds, wall, time.time()

    TICK = os.sysconf("SC_CLK_TCK")

    def processes() -> dict[int, tuple[int, str, float]]:
        # pid -> (session id, name, CPU seconds so far); each `ray start` node is a session of its own
        out = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
            except OSError:
                continue
            name = argv[0].decode(errors="replace")
            if name.endswith(("python", "python3")):
                name = next((a.decode() for a in argv[1:] if a.endswith(b".py")), name)
            out[int(pid)] = (int(fields[3]), os.path.basename(name.split()[0]) if name else "?",
                             (int(fields[11]) + int(fields[12])) / TICK)
        return out

    def cpu_by_role(before, after) -> dict[str, float]:
        cluster = {sid for sid, name, _ in after.values() if name in ("raylet", "gcs_server")}
        roles: dict[str, float] = {}
        for pid, (sid, name, cpu) in after.items():
            spent = cpu - before.get(pid, (0, "", 0.0))[2]
            if spent <= 0:
                continue
            if pid == os.getpid():
                role = "driver"
            elif sid not in cluster:
                role = "not this cluster (other work on the machine)"
            elif name.startswith("ray::"):
                role = "Ray worker processes (the read tasks and Ray Data's actors)"
            elif name in ("raylet", "gcs_server"):
                role = name
            else:
                role = "other Ray daemons (" + name + ")"
            roles[role] = roles.get(role, 0.0) + spent
        return dict(sorted(roles.items(), key=lambda kv: -kv[1]))

    read(2)  # warm-up: workers started, modules imported on both nodes
    results = {1: [], 2: []}
    passes = []
    load_before = os.getloadavg()
    cpu_before = processes()
    for r in range(rounds):
        for c in ((1, 2) if r % 2 == 0 else (2, 1)):
            rows, per_block, seconds, t0, t1 = read(c)
            results[c].append(rows / seconds)
            passes.append((r + 1, c, rows, per_block, seconds, t0, t1))
    cpu = cpu_by_role(cpu_before, processes())
    load_after = os.getloadavg()

    time.sleep(2)  # workers report task events about once a second
    events = [e for e in ray.timeline() if e.get("ph") == "X" and str(e.get("cat", "")).startswith("task::")]
    busy_sums = {1: [], 2: []}
    for r, c, rows, per_block, seconds, t0, t1 in passes:
        busy: dict[str, float] = {}
        first, last = t1, t0
        spans = []
        for e in events:
            if "MapBatches(reduce)" in e["cat"] and t0 * 1e6 <= e["ts"] <= t1 * 1e6:
                busy[e["tid"]] = busy.get(e["tid"], 0.0) + e["dur"] / 1e6
                first, last = min(first, e["ts"] / 1e6), max(last, (e["ts"] + e["dur"]) / 1e6)
                spans.append((e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6))
        # seconds during which two read tasks ran at once: what a second worker can add
        both = sum(max(0.0, min(a[1], b[1]) - max(a[0], b[0])) for i, a in enumerate(spans) for b in spans[i + 1 :])
        busy_sums[c].append(sum(busy.values()))
        shares = " / ".join(f"{b:.2f}" for b in sorted(busy.values(), reverse=True))
        print(f"round {r}, {c} worker process{'es' if c == 2 else ''}: {rows:,} rows in {seconds:.2f} s "
              f"({len(per_block)} blocks of {min(per_block):,}-{max(per_block):,} rows; "
              f"read tasks busy per worker process: {shares} s, two at once {both:.2f} s; "
              f"first task began {first - t0:.2f} s in, "
              f"the pass ended {t1 - last:.2f} s after the last task)", flush=True)
    ratios = [two / one for one, two in zip(results[1], results[2])]
    print("RESULT " + json.dumps({
        "one": statistics.median(results[1]), "two": statistics.median(results[2]),
        "ratio": statistics.median(ratios), "ratios": ratios, "rows": rows,
        "busy": {c: statistics.median(v) for c, v in busy_sums.items()},
        "cpu": cpu, "timed": sum(p[4] for p in passes), "load": [load_before, load_after],
    }), flush=True)
    """
).replace("WAIT_FOR_TWO_NODES\n", WAIT_FOR_TWO_NODES.lstrip("\n"))


def v2_settings(files: list[str], blocks: int) -> dict[str, str]:
    """Ray's V2 Parquet reader sized for this 2-node cluster: one footer actor per node (not 32), and
    bins of 1/blocks of the release's uncompressed bytes, so it reads as `blocks` tasks (not one)."""
    total = 0
    for path in files:
        meta = pq.ParquetFile(path).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return {
        "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "2",
        "RAY_DATA_PARQUET_BIN_PACKING_BYTES": str(math.ceil(total / blocks)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--blocks",
        type=int,
        default=8,
        help="read tasks per pass (a release has one file per partition; "
        "a task per small file would measure Ray's scheduling, not reading)",
    )
    parser.add_argument(
        "--reader",
        choices=("v1", "v2"),
        default="v1",
        help="Ray's Parquet reader: v1 honours --blocks and lists on the driver; v2 (Ray 2.60's default) "
        "lists through an actor pool on every pass",
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
        v2_env = v2_settings(files, args.blocks) if args.reader == "v2" else {}
        print(f"release: {rows.num_rows:,} rows in {len(files)} Parquet files, read as {args.blocks} tasks")

        with local_cluster(object_store_bytes=200_000_000) as (address, env):
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    DRIVER,
                    address,
                    str(listing),
                    str(args.rounds),
                    str(args.blocks),
                    args.reader,
                    json.dumps(v2_env),
                ],
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
    print(
        f"read tasks' busy time per pass (median, all workers): 1 process {figures['busy']['1']:.2f} s, "
        f"2 processes {figures['busy']['2']:.2f} s (the same work: these should be close)"
    )
    print(f"CPU seconds during the {figures['timed']:.1f} s of timed passes ({os.cpu_count()} cores):")
    for role, seconds in figures["cpu"].items():
        print(f"  {seconds:7.2f}  {role}")
    (before, *_), (after, *_) = figures["load"]
    verdict = "OK" if figures["ratio"] >= 1.5 else "BELOW TARGET"
    rounds = ", ".join(f"{r:.2f}" for r in figures["ratios"])
    print(
        f"Ray Data ({args.reader} reader), 1 worker process: {figures['one']:,.0f} rows/s; "
        f"2 worker processes: {figures['two']:,.0f} rows/s; median ratio {figures['ratio']:.2f}x "
        f"(rounds {rounds}; target >= 1.5x) {verdict}; "
        f"1-min load average {before:.2f} before, {after:.2f} after the timed passes; "
        f"os.cpu_count() = {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
