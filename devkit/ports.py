"""Free TCP ports on 127.0.0.1 for the servers tests start, without collisions between parallel test processes.

Binding port 0 gives a port from the kernel's ephemeral range, which every outgoing connection uses too,
and the port is free only until that socket closes: before the server binds it (or binds it again after a
kill), another test process of ``pytest -n`` or any client connection may have taken it. So ports come from
20000-32767 instead: below the ephemeral range (32768-60999 on Linux) and above Ray's worker ports
(10002-19999). Each pytest-xdist worker hands out ports from its own slice of that range, in turn, each
checked free by a bind; a port comes back to the same worker only after its whole slice was used.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading

FIRST, LAST = 20000, 32767

_lock = threading.Lock()
_next: int | None = None


def _slice() -> tuple[int, int]:
    """This process's ports: the whole range, or worker N of M's M-th part of it under pytest-xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return FIRST, LAST
    index = int(worker[2:]) % count
    size = (LAST - FIRST + 1) // count
    return FIRST + index * size, FIRST + (index + 1) * size - 1


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on, from this process's slice (never the one handed out just before)."""
    global _next
    low, high = _slice()
    size = high - low + 1
    with _lock:
        if _next is None or not low <= _next <= high:
            _next = low + secrets.randbelow(size)
        for _ in range(size):
            port = _next
            _next = low if _next >= high else _next + 1
            if _is_free(port):
                return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {low}-{high}")
