"""The PostgreSQL password never sits in a store process's arguments, which every account on the host reads.

``ps`` and ``/proc/PID/cmdline`` show any process's argv to every local user; its environment
(``/proc/PID/environ``) only to its own user and root. So ``--dsn`` with a password in it is refused before
anything is made, and the DSN is given in ``CONSENTRY_STORE_DSN`` (or the password kept in ``~/.pgpass``).
Checked with a real ``store serve`` and a real second Unix user (``nobody``) looking at it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from devkit.components import require
from devkit.store_kit import PG_DSN_ENV, Stewards, free_port, pg_dsn, postgres_available, write_policy
from tests.other_user import OTHER_USER, SYSTEM_PYTHON, as_other_user, require_other_user

pytestmark = pytest.mark.postgres

_SERVE = [sys.executable, "-c", "from admin.store_cmd import store; store()", "serve", "--backend", "postgres"]


@pytest.fixture
def dsn() -> Iterator[str]:
    """A DSN for a role of its own whose password is random: a needle no other argv can contain by chance
    (the test cluster's own password is the word "consentry", in every store command line)."""
    require(postgres_available(), "PostgreSQL", f"run: bash scripts/start-postgres.sh and set {PG_DSN_ENV}")
    require(
        os.geteuid() == 0 and shutil.which("su") is not None,
        "root, to create a PostgreSQL role",
        "run the test as root on the machine that runs PostgreSQL",
    )
    base = urlsplit(pg_dsn())
    role, password = "r_" + secrets.token_hex(6), secrets.token_hex(16)
    database = base.path.lstrip("/")

    def admin(sql: str) -> None:
        command = f"psql -X -v ON_ERROR_STOP=1 -qtA -p {base.port or 5432} -d {database} -c {shlex.quote(sql)}"
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True, timeout=120)

    admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT CREATE ON DATABASE {database} TO {role}")
    try:
        yield f"postgresql://{role}:{password}@{base.hostname}:{base.port or 5432}/{database}"
    finally:
        admin(f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "CONSENTRY_STORE_DSN"}


@pytest.mark.parametrize("spelled", [lambda dsn: dsn, lambda dsn: _keywords(dsn)], ids=["url", "keywords"])
def test_a_password_in_dsn_on_the_command_line_is_refused_before_anything_is_made(
    dsn: str, tmp_path: Path, spelled: Callable[[str], str]
) -> None:
    data = tmp_path / "store"
    policy = write_policy(tmp_path / "policy.toml", Stewards.make(1, 1))
    proc = subprocess.Popen(
        [*_SERVE, "--dsn", spelled(dsn), "--data", str(data), "--policy", str(policy)]
        + ["--port", str(free_port()), "--schema", "t_refused"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("store serve started with the database password in its arguments")
    said = " ".join(err.split())
    assert proc.returncode == 2, said
    assert "CONSENTRY_STORE_DSN" in said and ".pgpass" in said, said
    assert str(urlsplit(dsn).password) not in out + err  # the refusal does not repeat it either
    assert not data.exists()  # no key folder, no database schema: nothing was made


def _keywords(dsn: str) -> str:
    """The libpq keyword form of a URL DSN (host=... password=...)."""
    parts = urlsplit(dsn)
    return (
        f"host={parts.hostname} port={parts.port or 5432} dbname={parts.path.lstrip('/')} "
        f"user={parts.username} password={parts.password}"
    )


@pytest.mark.parametrize("spelled", [lambda dsn: dsn, lambda dsn: _keywords(dsn)], ids=["url", "keywords"])
def test_a_store_given_its_dsn_in_the_environment_shows_no_password_to_another_account(
    dsn: str, tmp_path: Path, spelled: Callable[[str], str]
) -> None:
    """Either spelling of the DSN serves (the keyword form once stopped the release catalog with a traceback)."""
    require_other_user()
    password = urlsplit(dsn).password
    assert password
    port = free_port()
    policy = write_policy(tmp_path / "policy.toml", Stewards.make(1, 1))
    schema = "t_env_dsn"
    proc = subprocess.Popen(
        [*_SERVE, "--data", str(tmp_path / "store"), "--policy", str(policy), "--port", str(port), "--schema", schema],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**_env(), "CONSENTRY_STORE_DSN": spelled(dsn)},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the store did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # What ``nobody`` sees of the running store: every argv on the machine, and the store's environment.
        look = (
            "import pathlib\n"
            "argv = []\n"
            "for p in pathlib.Path('/proc').iterdir():\n"
            "    try:\n"
            "        argv.append(p.joinpath('cmdline').read_bytes() if p.name.isdigit() else b'')\n"
            "    except OSError:\n"
            "        pass  # a process that ended while we looked\n"
            "print(b' '.join(argv).replace(b'\\0', b' ').decode('utf-8', 'replace'))\n"
            "try:\n"
            f"    print(pathlib.Path('/proc/{proc.pid}/environ').read_bytes())\n"
            "except PermissionError:\n"
            "    print('ENVIRON-REFUSED')\n"
        )
        seen = subprocess.run(
            [*as_other_user(), SYSTEM_PYTHON, "-I", "-c", look], capture_output=True, text=True, timeout=60
        )
        assert seen.returncode == 0, seen.stderr
        assert f"--port {port}" in seen.stdout  # the look does reach the store's arguments
        assert password not in seen.stdout, f"{OTHER_USER} reads the database password"
        assert "ENVIRON-REFUSED" in seen.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)  # the role's schema goes with the role (DROP OWNED)
