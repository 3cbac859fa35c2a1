"""A private, throw-away PostgreSQL cluster (initdb in a temporary folder, its own port on 127.0.0.1).

For benchmarks and tests that restart or crash PostgreSQL: doing that to the shared test cluster
(scripts/start-postgres.sh) would break everyone else's tests. The cluster trusts local connections
(it listens on 127.0.0.1 only, its socket folder is private, and it is deleted afterwards). As root,
the server runs as the ``postgres`` account, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from devkit.components import require

_PG_ROOT = Path("/usr/lib/postgresql")
_SERVER_USER = "postgres"


def _bin_dir() -> Path:
    versions = sorted((p for p in _PG_ROOT.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name))
    require(bool(versions), "PostgreSQL server binaries (initdb, pg_ctl)", "apt-get install -y postgresql")
    return versions[-1]


class ThrowawayCluster:
    """``initdb`` + ``pg_ctl`` on a port of its own; ``restart(mode)`` and ``stop()`` touch only this cluster."""

    def __init__(self, port: int, *, database: str = "consentry", user: str = "consentry") -> None:
        self.port = port
        self.database = database
        self.user = user
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="consentry-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_SERVER_USER)
            self._as = ["runuser", "-u", _SERVER_USER, "--"]
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.socket_dir.mkdir()
        if self._as:
            os.chown(self.socket_dir, pwd.getpwnam(_SERVER_USER).pw_uid, pwd.getpwnam(_SERVER_USER).pw_gid)
            self.root.chmod(0o755)  # the benchmark (root) reads the log; nothing secret lives here

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        subprocess.run([*self._as, *args], check=True, timeout=timeout, capture_output=True, cwd="/")

    def create(self) -> ThrowawayCluster:
        """initdb (trust auth, a superuser named ``user``), start, and create the database."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        return self

    def _options(self) -> str:
        return f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=200 -c fsync=on"

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w", "start"
        )
        self._wait_ready()

    def restart(self, mode: str = "immediate") -> float:
        """Restart the server (``immediate``: a crash, then recovery); returns the seconds it was down."""
        began = time.monotonic()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.start()
        return time.monotonic() - began

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                timeout=60, capture_output=True, cwd="/",
            )  # fmt: skip

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False, cwd="/"
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the throw-away PostgreSQL did not become ready; see {self.log}")

    def __enter__(self) -> ThrowawayCluster:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
