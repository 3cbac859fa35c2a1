"""The store under hostile bodies: its memory and /v1/health latency while 20 senders push 30 MB requests.

Starts ``consentry store serve`` (a real process on 127.0.0.1), then measures, in the same run:

1. at rest: the store's RSS and /v1/health latency p50/p99 (the baseline);
2. under attack: ``--senders`` threads each sending up to ``--max-rounds`` requests of ``--mb`` MB to
   /v1/uploads, one after the other, within ``--seconds``,
   unsigned, with a forged signature under an unknown device or steward key, or stale; meanwhile the
   store's RSS is sampled every 20 ms and /v1/health is timed.

Prints the RSS growth (peak under attack minus at rest) and health p99 against the targets (64 MB,
100 ms) and as ratios to the baseline. Loopback only; every socket has a timeout, so it always ends.

    python benchmarks/bench_store_hostile.py [--senders 20] [--mb 30] [--max-rounds 5] [--seconds 10]
                                             [--backend dir|postgres] [--kinds unsigned,stale,...]

``--max-rounds 200`` turns it into a connection flood (each refused sender reconnects at once, hundreds
per second): memory stays flat, but every connection costs the store ~1 ms of CPU in uvicorn, so health
latency then measures connection handling, which a reverse proxy's rate limit is for (docs/store.md).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from protocol import SigningKey
from protocol.request_signing import sign_request
from tests.store_kit import Stewards, StoreProcess, free_port, pg_dsn, postgres_available, write_policy

TARGET_RSS_GROWTH_MB = 64.0
TARGET_HEALTH_P99_MS = 100.0
KINDS = ("unsigned", "unknown-device", "unknown-steward", "stale")
CHUNK = 1024 * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc (Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def hostile_headers(kind: str) -> dict[str, str]:
    now = int(time.time())
    if kind == "unsigned":
        return {}
    if kind == "stale":
        now -= 7200
    role = "steward" if kind == "unknown-steward" else "device"
    return sign_request(SigningKey.generate(), role, "POST", "/v1/uploads", b"forged", now=now)


def hostile_request(port: int, kind: str, size: int) -> str:
    """Send one ``size``-byte request, or as much as the store takes before it hangs up; its status or error."""
    head = ["POST /v1/uploads HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in hostile_headers(kind).items()]
    head.append(f"Content-Length: {size}")
    chunk = b" " * CHUNK
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            # Small send buffers: on one machine the senders' own kernel copying must not starve the store.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("ascii") + b"{")
            try:
                for sent in range(1, size, CHUNK):
                    sock.sendall(chunk[: min(CHUNK, size - sent)])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the store refused and closed: what it should do
            status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
            return status_line.split()[1] if status_line else "closed"
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__


def health_latencies(url: str, count: int, stop: Any = None) -> list[float]:
    """Seconds per GET /v1/health on one keep-alive connection (until ``stop`` when given)."""
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while (stop is None and len(times) < count) or (stop is not None and not stop.is_set()):
            start = time.perf_counter()
            client.get("/v1/health").raise_for_status()
            times.append(time.perf_counter() - start)
            time.sleep(0.01)
    return times


def _probe(url: str, ready: Any, stop: Any, out: Any) -> None:
    """In its own process, so the senders' threads (and their GIL) do not delay the measurement."""
    health_latencies(url, 5)
    ready.set()
    out.put(health_latencies(url, 0, stop))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--mb", type=int, default=30, help="size of each hostile request")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the senders keep sending")
    parser.add_argument("--max-rounds", type=int, default=5, help="at most this many requests per sender")
    parser.add_argument("--backend", choices=["dir", "postgres"], default="dir")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k in KINDS] or list(KINDS)
    if args.backend == "postgres" and not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    tmp = Path(tempfile.mkdtemp(prefix="consentry-hostile-"))
    schema = "bench_" + secrets.token_hex(4)
    server = StoreProcess(
        tmp / "store",
        write_policy(tmp / "policy.toml", Stewards.make(2, 2)),
        backend=args.backend,
        port=free_port(),
        schema=schema,
        extra=("--max-body-mb", "32"),
    ).start()
    pid = server.proc.pid  # type: ignore[attr-defined]
    try:
        health_latencies(server.url, 50)  # warm up
        base = health_latencies(server.url, 300)
        rest = rss_bytes(pid)

        peak = rest
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_bytes(pid))
                time.sleep(0.02)

        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def sender(i: int) -> None:
            for r in range(args.max_rounds):
                if time.perf_counter() > deadline:
                    break
                result = hostile_request(server.port, kinds[(i + r) % len(kinds)], args.mb * 1024 * 1024)
                with lock:
                    outcomes[result] += 1

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        ctx = multiprocessing.get_context("spawn")
        probe_ready, probe_stop, probe_out = ctx.Event(), ctx.Event(), ctx.Queue()
        prober = ctx.Process(target=_probe, args=(server.url, probe_ready, probe_stop, probe_out))
        prober.start()
        if not probe_ready.wait(timeout=60):  # measuring before the first hostile byte
            sys.exit("the health probe did not start")
        began = time.perf_counter()
        cpu_before = cpu_seconds(pid)
        deadline = began + args.seconds
        senders = [threading.Thread(target=sender, args=(i,)) for i in range(args.senders)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=120)
        elapsed = time.perf_counter() - began
        store_cpu = cpu_seconds(pid) - cpu_before
        time.sleep(0.5)  # let the last health probes and RSS samples land
        stop.set()
        probe_stop.set()
        attack: list[float] = probe_out.get(timeout=60)
        prober.join(timeout=30)
        sampler.join(timeout=5)
        if server.proc.poll() is not None:  # type: ignore[attr-defined]
            sys.exit("the store died under attack")
    finally:
        server.stop()
        if args.backend == "postgres":
            from store.backends.postgres import PostgresBackend

            leftover = PostgresBackend(pg_dsn(), schema=schema)
            leftover.drop_schema()
            leftover.close()

    growth_mb = (peak - rest) / 2**20
    b50, b99 = pct(base, 50) * 1000, pct(base, 99) * 1000
    a50, a99 = pct(attack, 50) * 1000, pct(attack, 99) * 1000
    total = sum(outcomes.values())
    print(
        f"backend {args.backend}; {total} hostile {args.mb} MB requests from {args.senders} senders in {elapsed:.1f} s"
    )
    print(
        f"answers: {dict(sorted(outcomes.items()))}; store CPU {store_cpu:.1f} s ({store_cpu / elapsed:.0%} of a core)"
    )
    print(f"RSS at rest {rest / 2**20:.1f} MB, peak under attack {peak / 2**20:.1f} MB")
    ok = "ok" if growth_mb <= TARGET_RSS_GROWTH_MB else "OVER TARGET"
    print(f"RSS growth: {growth_mb:.1f} MB (target <= {TARGET_RSS_GROWTH_MB:.0f} MB: {ok})")
    print(f"health at rest:      p50 {b50:.1f} ms, p99 {b99:.1f} ms ({len(base)} requests)")
    print(f"health under attack: p50 {a50:.1f} ms, p99 {a99:.1f} ms ({len(attack)} requests)")
    ok = "ok" if a99 <= TARGET_HEALTH_P99_MS else "OVER TARGET"
    print(
        f"health p99 ratio under attack / at rest: {a99 / b99:.2f}x (target p99 <= {TARGET_HEALTH_P99_MS:.0f} ms: {ok})"
    )


if __name__ == "__main__":
    main()
