"""One agent per employee: an exclusive ``flock`` on the lock file in the runtime folder."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from agent.errors import AlreadyRunning

LOCK_RETRY_SECONDS = 0.05


class InstanceLock:
    """Held for the agent's lifetime; the kernel releases it when the process dies, even by kill -9."""

    def __init__(self, path: Path, *, wait_seconds: float = 0.0) -> None:
        """``wait_seconds``: how long a held lock is retried, so that an agent started right after the
        last one was told to stop waits for it to finish its final flush instead of refusing."""
        self._path = path
        self._wait_seconds = wait_seconds
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._path.parent, 0o700)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self._wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(LOCK_RETRY_SECONDS)
                    continue
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                waited = f"; it did not stop within {self._wait_seconds:g} s" if self._wait_seconds else ""
                raise AlreadyRunning(
                    f"another Consentry agent is already running for this user (pid {holder or 'unknown'}){waited}"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
