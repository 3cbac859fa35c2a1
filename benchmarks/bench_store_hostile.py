"""The store under hostile senders: its memory and /v1/health latency while each attack runs.

Each attack runs against its own fresh ``consentry store serve`` (a real process on 127.0.0.1), measured
in the same run: first at rest (RSS, /v1/health p50/p99: the baseline), then under the attack, while
the store's RSS is sampled every 20 ms and /v1/health is timed from another process on one keep-alive
connection. Attacks (``--attacks``, comma-separated; all by default):

- ``bodies``: ``--senders`` threads sending up to ``--max-rounds`` requests of ``--mb`` MB to /v1/uploads
  within ``--seconds``: unsigned, forged under an unknown device or steward key, or stale;
- ``trickle``: ``--tricklers`` uploads under a *known* device key id with a fresh timestamp and a random
  signature, declaring an 8 MB body and sending one byte every 0.5 s; meanwhile a 2 MB body like them
  is offered once a second, to see whether the large-body slots are still free for others;
- ``parallel``: ``--parallel`` senders at once, each a ~1 MB body (just under the large-body size)
  under the known device key id with a random signature, ``--max-rounds`` rounds within ``--seconds``;
- ``idle``: ``--idle`` connections that send half a request head and then nothing, held ``--seconds``;
  meanwhile a *new* connection asks /v1/health once a second (is the store still reachable?).

Prints, per attack, the RSS growth (peak under attack minus at rest) and health p99 against the targets
(64 MB, 100 ms) and as ratios to the at-rest baseline, plus what the store answered the attackers.
Loopback only; every socket has a timeout, so it always ends.

    python benchmarks/bench_store_hostile.py [--backend dir|postgres] [--attacks bodies,trickle,parallel,idle]
        [--senders 20] [--mb 30] [--max-rounds 5] [--seconds 10] [--tricklers 2] [--parallel 300] [--idle 1100]
        [--store-nofile 1024]

The store runs with the soft open-files limit ``--store-nofile`` (1024 by default: what systemd gives a
service whose unit does not raise it), the limit the idle attack runs into.

``--attacks bodies --max-rounds 200`` turns it into a connection flood (each refused sender reconnects at
once, hundreds per second): memory stays flat, but every connection costs the store ~1 ms of CPU in
uvicorn, so health latency then measures connection handling, which a reverse proxy's rate limit is for
(docs/store.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from devkit.store_kit import Agent, Stewards, StoreProcess, free_port, pg_dsn, postgres_available, write_policy
from protocol import SigningKey
from protocol.request_signing import sign_request

TARGET_RSS_GROWTH_MB = 64.0
TARGET_HEALTH_P99_MS = 100.0
ATTACKS = ("bodies", "trickle", "parallel", "idle")
KINDS = ("unsigned", "unknown-device", "unknown-steward", "stale")
CHUNK = 1024 * 1024
PROBE_TIMEOUT = 5.0  # a health request that takes longer counts as this long (and as failed)


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


def known_key_headers(kid: str) -> dict[str, str]:
    """What the pre-body check accepts: a known device key id, a fresh timestamp, a fresh nonce; the
    signature is random bytes, which only the body's digest could check."""
    return {
        "Consentry-Key": f"device:{kid}",
        "Consentry-Timestamp": str(int(time.time())),
        "Consentry-Nonce": secrets.token_hex(16),
        "Consentry-Signature": base64.b64encode(secrets.token_bytes(64)).decode("ascii"),
    }


def request_head(port: int, headers: dict[str, str], size: int) -> bytes:
    head = ["POST /v1/uploads HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {size}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii")


def status_of(sock: socket.socket) -> str:
    try:
        status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__
    return status_line.split()[1] if status_line else "closed"


def body_request(port: int, headers: dict[str, str], size: int, sndbuf: int = 64 * 1024) -> str:
    """Send one ``size``-byte request, or as much as the store takes before it hangs up; its status or error."""
    chunk = b" " * CHUNK
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            # Small send buffers: on one machine the senders' own kernel copying must not starve the store.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.sendall(request_head(port, headers, size) + b"{")
            try:
                for sent in range(1, size, CHUNK):
                    sock.sendall(chunk[: min(CHUNK, size - sent)])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the store refused and closed: what it should do
            return status_of(sock)
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__


def health_latencies(
    url: str, count: int, stop: Any = None, client: httpx.Client | None = None
) -> tuple[list[float], int]:
    """Seconds per GET /v1/health on one keep-alive connection (until ``stop`` when given), and failures."""
    if client is None:
        with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT) as own:
            return health_latencies(url, count, stop, own)
    times: list[float] = []
    failed = 0
    while (stop is None and len(times) < count) or (stop is not None and not stop.is_set()):
        start = time.perf_counter()
        try:
            client.get("/v1/health").raise_for_status()
        except httpx.HTTPError:
            failed += 1  # counted at the time it took (up to the timeout): the store did not answer
        times.append(time.perf_counter() - start)
        time.sleep(0.01)
    return times, failed


def _probe(url: str, ready: Any, stop: Any, out: Any) -> None:
    """In its own process, so the senders' threads (and their GIL) do not delay the measurement.

    It measures on one connection opened before the attack starts (``ready``): established and kept
    alive, as a monitoring system's or a busy agent's is. (It used to open a new one after ``ready``,
    which the idle attack's 1,100 connections then beat to the connection cap: every probe failed.)
    New connections during the idle attack are counted separately (``new-connection-health``).
    """
    with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT) as client:
        health_latencies(url, 5, client=client)
        ready.set()
        out.put(health_latencies(url, 0, stop, client))


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else values[0]


@dataclass
class Outcome:
    """What one attack run saw, besides RSS and health."""

    answers: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, answer: str) -> None:
        with self.lock:
            self.answers[answer] += 1


def attack_bodies(port: int, kid: str, args: argparse.Namespace, out: Outcome) -> None:
    kinds = [k for k in args.kinds.split(",") if k in KINDS] or list(KINDS)
    deadline = time.perf_counter() + args.seconds

    def sender(i: int) -> None:
        for r in range(args.max_rounds):
            if time.perf_counter() > deadline:
                break
            out.count(body_request(port, hostile_headers(kinds[(i + r) % len(kinds)]), args.mb * CHUNK))

    _run_threads(sender, args.senders)


def attack_trickle(port: int, kid: str, args: argparse.Namespace, out: Outcome) -> None:
    """Slow uploads that hold large-body slots; meanwhile someone else's large body tries to get one."""
    held: list[float] = []
    stop = threading.Event()

    def trickler(i: int) -> None:
        began = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request_head(port, known_key_headers(kid), 8 * CHUNK))
                while not stop.is_set():
                    sock.sendall(b" ")
                    readable = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) if _readable(sock) else None
                    if readable is not None:  # the store answered (and hangs up)
                        out.count("trickler:" + status_of(sock))
                        break
                    time.sleep(0.5)
                else:
                    out.count("trickler:still-open")
        except (ConnectionError, TimeoutError) as exc:
            out.count("trickler:" + type(exc).__name__)
        held.append(time.perf_counter() - began)

    threads = [threading.Thread(target=trickler, args=(i,)) for i in range(args.tricklers)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # let them take their slots
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        out.count("other-2MB-body:" + body_request(port, known_key_headers(kid), 2 * CHUNK))
        time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    out.notes.append(f"tricklers held their connections {', '.join(f'{s:.1f} s' for s in sorted(held))}")


def _readable(sock: socket.socket) -> bool:
    """Whether the store sent something (or hung up), without waiting; poll, not select: fds above 1024."""
    import select

    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def attack_parallel(port: int, kid: str, args: argparse.Namespace, out: Outcome) -> None:
    size = 1_000_000  # under the 1 MiB large-body size: needs no slot
    deadline = time.perf_counter() + args.seconds

    def sender(i: int) -> None:
        for _ in range(args.max_rounds):
            if time.perf_counter() > deadline:
                break
            out.count(body_request(port, known_key_headers(kid), size, sndbuf=1024 * 1024))

    _run_threads(sender, args.parallel)


def attack_idle(port: int, kid: str, args: argparse.Namespace, out: Outcome) -> None:
    """Half-request heads that never finish; a new connection asks /v1/health once a second meanwhile."""
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(args.idle):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(sock)
        except (ConnectionError, TimeoutError, OSError):
            refused += 1
    out.notes.append(f"{len(socks)} half-requests open, {refused} connections refused at connect")
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=PROBE_TIMEOUT).status_code
            out.count(f"new-connection-health:{answer}")
        except httpx.HTTPError as exc:
            out.count(f"new-connection-health:{type(exc).__name__}")
        time.sleep(1.0)
    closed = Counter(_idle_state(s) for s in socks)
    out.notes.append(f"half-requests after {args.seconds:.0f} s: {dict(sorted(closed.items()))}")
    for sock in socks:
        sock.close()


def _idle_state(sock: socket.socket) -> str:
    if not _readable(sock):
        return "still open"
    try:
        data = sock.recv(4096)
    except ConnectionError:
        return "reset by the store"
    return f"answered {data.split()[1].decode()}" if data.startswith(b"HTTP/") else "closed by the store"


def _run_threads(target: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)


ATTACK_RUNNERS: dict[str, Callable[[int, str, argparse.Namespace, Outcome], None]] = {
    "bodies": attack_bodies,
    "trickle": attack_trickle,
    "parallel": attack_parallel,
    "idle": attack_idle,
}


def enroll_device(server: StoreProcess, backend: str, schema: str) -> str:
    """A real enrolled device (its kid is what the attacker knows)."""
    cmd = [sys.executable, "-c", "from admin.store_cmd import store; store()", "token", "--backend", backend]
    cmd += ["--data", str(server.data_dir), "--schema", schema, "--json"]
    env = {**os.environ, "CONSENTRY_STORE_DSN": pg_dsn()} if backend == "postgres" else None
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60, env=env)
    token = json.loads(done.stdout)["token"]
    from kit.store_client import StoreClient

    agent = Agent()
    with StoreClient(server.url, signer=agent.device) as client:
        return client.enroll(token).device_kid


def run_attack(name: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="consentry-hostile-"))
    schema = "bench_" + secrets.token_hex(4)
    server = StoreProcess(
        tmp / "store",
        write_policy(tmp / "policy.toml", Stewards.make(2, 2)),
        backend=args.backend,
        port=free_port(),
        schema=schema,
        extra=("--max-body-mb", "32"),
    )
    # The store gets the open-files limit a systemd service has unless its unit says otherwise (soft 1024);
    # prlimit execs the store, so the pid stays the store's.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    server.args = ["prlimit", f"--nofile={args.store_nofile}:{hard}", "--", *server.args]
    server.start()
    pid = server.proc.pid  # type: ignore[attr-defined]
    outcome = Outcome()
    try:
        kid = enroll_device(server, args.backend, schema)
        health_latencies(server.url, 50)  # warm up
        base, _ = health_latencies(server.url, 300)
        rest = rss_bytes(pid)
        peak = rest
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                try:
                    peak = max(peak, rss_bytes(pid))
                except (OSError, RuntimeError):
                    return  # the store exited (stopped after a failed attack)
                time.sleep(0.02)

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
        ATTACK_RUNNERS[name](server.port, kid, args, outcome)
        elapsed = time.perf_counter() - began
        store_cpu = cpu_seconds(pid) - cpu_before
        time.sleep(0.5)  # let the last health probes and RSS samples land
        stop.set()
        probe_stop.set()
        attack, failed = probe_out.get(timeout=120)
        prober.join(timeout=30)
        sampler.join(timeout=5)
        after = rss_bytes(pid)
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
    print(f"== attack {name}, backend {args.backend}, {elapsed:.1f} s")
    print(f"answers: {dict(sorted(outcome.answers.items()))}")
    for note in outcome.notes:
        print(note)
    print(f"store CPU {store_cpu:.1f} s ({store_cpu / elapsed:.0%} of a core)")
    print(f"RSS at rest {rest / 2**20:.1f} MB, peak under attack {peak / 2**20:.1f} MB, after {after / 2**20:.1f} MB")
    ok = "ok" if growth_mb <= TARGET_RSS_GROWTH_MB else "OVER TARGET"
    print(f"RSS growth: {growth_mb:.1f} MB (target <= {TARGET_RSS_GROWTH_MB:.0f} MB: {ok})")
    print(f"health at rest:      p50 {b50:.1f} ms, p99 {b99:.1f} ms ({len(base)} requests)")
    print(f"health under attack: p50 {a50:.1f} ms, p99 {a99:.1f} ms ({len(attack)} requests, {failed} failed)")
    ok = "ok" if a99 <= TARGET_HEALTH_P99_MS and not failed else "OVER TARGET"
    print(
        f"health p99 ratio under attack / at rest: {a99 / b99:.2f}x (target p99 <= {TARGET_HEALTH_P99_MS:.0f} ms: {ok})"
    )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated subset of {','.join(ATTACKS)}")
    parser.add_argument("--senders", type=int, default=20, help="bodies: concurrent senders")
    parser.add_argument("--mb", type=int, default=30, help="bodies: size of each hostile request")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each attack keeps going")
    parser.add_argument("--max-rounds", type=int, default=5, help="bodies, parallel: at most this many per sender")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"bodies: subset of {','.join(KINDS)}")
    parser.add_argument("--tricklers", type=int, default=2, help="trickle: slow uploads at once")
    parser.add_argument("--parallel", type=int, default=300, help="parallel: ~1 MB senders at once")
    parser.add_argument("--idle", type=int, default=1100, help="idle: half-request connections")
    parser.add_argument("--backend", choices=["dir", "postgres"], default="dir")
    parser.add_argument(
        "--store-nofile", type=int, default=1024, help="the store's soft open-files limit (systemd's default)"
    )
    args = parser.parse_args()
    if args.backend == "postgres" and not postgres_available():
        sys.exit("PostgreSQL is not reachable: run bash scripts/start-postgres.sh and set CONSENTRY_TEST_PG_DSN")
    for name in [a for a in args.attacks.split(",") if a in ATTACKS] or list(ATTACKS):
        run_attack(name, args)


if __name__ == "__main__":
    main()
