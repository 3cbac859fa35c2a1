"""What the local pages' peer check costs: checked (the owner of a connection's other end read from
/proc/net/tcp{,6}) vs the same page with an owner lookup that reads nothing, alternated in one run,
with N extra idle loopback connections open on the machine (the tables grow with every socket).

new        every request on a new connection: the check's worst case (it runs once per connection);
           the cost is the kernel writing out the tables, so it grows with the sockets on the machine.
           Target: <= 25 ms added per new connection with 2,000 extra sockets.
keep-alive 300 requests on one connection, as a browser makes them. Target: ratio <= 1.2x.

python benchmarks/bench_page_peer.py [--requests 300] [--rounds 6] [--sockets 0,500,2000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from kit.web.peer_linux import ProcNetTcp  # noqa: E402
from kit.web.server import PageServer, Request, Response  # noqa: E402


class Hello:
    """The smallest page: the cost measured is the server's and the guard's, not a page's."""

    title = "bench"

    def handle(self, request: Request) -> Response:
        return Response.html("<main>ok</main>")


class OwnUidUnchecked:
    """Baseline owner lookup: says "ours" without reading anything (never use outside this benchmark)."""

    def owner_uid(self, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
        return os.geteuid()


def _per_request(server: PageServer, requests: int) -> float:
    """Seconds per GET, each on a fresh connection with the session cookie (http.client: little client cost)."""
    with httpx.Client(base_url=server.url) as opener:
        opener.get("/", params={"token": server.token})
        cookie = "; ".join(f"{k}={v}" for k, v in opener.cookies.items())
    headers = {"Host": f"127.0.0.1:{server.port}", "Cookie": cookie}
    started = time.perf_counter()
    for _ in range(requests):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # a new connection each time
        connection.request("GET", "/", headers=headers)
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 200
    return (time.perf_counter() - started) / requests


def _per_request_kept_alive(server: PageServer, requests: int) -> float:
    with httpx.Client(base_url=server.url) as client:
        client.get("/", params={"token": server.token})
        started = time.perf_counter()
        for _ in range(requests):
            assert client.get("/").status_code == 200
    return (time.perf_counter() - started) / requests


def _idle_sockets(count: int) -> list[socket.socket]:
    held = []
    listener = socket.create_server(("127.0.0.1", 0), backlog=count + 1)
    held.append(listener)
    for _ in range(count):
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        held += [client, accepted]
    return held


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sockets", default="0,500,2000")
    args = parser.parse_args()
    checked = PageServer(Hello(), owners=ProcNetTcp()).start()
    baseline = PageServer(Hello(), owners=OwnUidUnchecked()).start()
    try:
        for extra in (int(n) for n in args.sockets.split(",")):
            held = _idle_sockets(extra)
            try:
                rows = len(Path("/proc/net/tcp").read_text().splitlines()) + len(
                    Path("/proc/net/tcp6").read_text().splitlines()
                )
                for name, measure in (("new", _per_request), ("keep-alive", _per_request_kept_alive)):
                    with_check, without = [], []
                    for _ in range(args.rounds):  # alternated, so drift on a shared machine hits both alike
                        with_check.append(measure(checked, args.requests))
                        without.append(measure(baseline, args.requests))
                    a, b = statistics.median(with_check), statistics.median(without)
                    print(
                        f"{name:>10}, {extra:>5} extra sockets ({rows} table rows): checked {a * 1e3:.2f} ms/request, "
                        f"unchecked {b * 1e3:.2f} ms/request, ratio {a / b:.2f}x, added {(a - b) * 1e3:.2f} ms"
                    )
            finally:
                for s in held:
                    s.close()
    finally:
        checked.stop()
        baseline.stop()


if __name__ == "__main__":
    main()
