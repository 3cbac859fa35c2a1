"""A throwaway local Ray cluster: ``ray start --head`` plus one worker node, each a process of its own.

Used by the release readers' test and by benchmarks/bench_release_ray.py. Each node runs in its own
process group and is ended by SIGKILL of that group (a graceful stop drains for 30 s); nothing is left
behind, not even Ray's temporary folder."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit.ports import free_port

# A driver waits for this before it reads: the worker node has joined.
WAIT_FOR_TWO_NODES = """
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2:
    if time.monotonic() > deadline:
        sys.exit("the worker node never joined")
    time.sleep(0.5)
"""


@contextmanager
def local_cluster(object_store_bytes: int) -> Iterator[tuple[str, dict[str, str]]]:
    """Yields the head's address and the environment a driver process should run with."""
    temp = Path(f"/tmp/ray-{secrets.token_hex(4)}")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", f"--object-store-memory={object_store_bytes}", "--block", "--disable-usage-stats"]
    head = ["start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"]
    address = f"127.0.0.1:{port}"
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(subprocess.Popen(_ray(*head, *common), env=env, start_new_session=True))
        # One log monitor per host (Ray's own advice for `--include-log-monitor`): the head's already
        # watches this host's log folder, a second one only duplicates its work.
        worker = ["start", f"--address={address}", "--include-log-monitor=false"]
        nodes.append(subprocess.Popen(_ray(*worker, *common), env=env, start_new_session=True))
        yield address, env
    finally:
        for node in reversed(nodes):
            _end_group(node)
        shutil.rmtree(temp, ignore_errors=True)


def _ray(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ray"), *args]


def _end_group(node: subprocess.Popen[bytes]) -> None:
    """SIGKILL the node's process group (``ray start --block`` and every daemon it started), then wait until
    no process of the group is left."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    node.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(node.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise RuntimeError(f"Ray processes of group {node.pid} outlived SIGKILL")
