"""Shared fixtures. Every test gets its own CONSENTRY_HOME so nothing touches a real home."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from vault.paths import Layout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Consentry home; also exported so subprocesses (the CLI, the agent) use it."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONSENTRY_HOME", str(home))
    monkeypatch.setenv("CONSENTRY_POLICY", str(tmp_path / "policy.toml"))
    monkeypatch.setenv("CONSENTRY_KEYSTORE", "file")
    return home


@pytest.fixture
def layout(home: Path) -> Layout:
    return Layout(home)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    """Where this test's machine policy lives (absent = embedded defaults)."""
    return tmp_path / "policy.toml"


# A parallel run (pytest -n, as scripts/test.sh runs the suite): each worker process gets a PostgreSQL
# database of its own. In one database, a snapshot open in any session holds back what VACUUM may remove
# (a write open in any database does too: the store waits for both before it rewrites its key table, and
# tests/store/test_store_at_rest.py waits for the store); advisory locks are per database too. Dropped at
# the end.
_worker_database: tuple[str, str] | None = None  # (the DSN it was created through, its name)


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        _use_a_database_of_this_worker(worker, os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _worker_database is not None:
        dsn, name = _worker_database

        def drop(conn: Any, sql: Any) -> None:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

        _on_server(dsn, drop)


def _on_server(dsn: str, action: Callable[[Any, Any], object]) -> bool:
    """``action(connection, psycopg.sql)`` on the server of ``dsn``; False when there is no server to reach."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return False
    try:
        conn = psycopg.connect(dsn, connect_timeout=3, autocommit=True)
    except psycopg.Error:
        return False
    with conn:
        action(conn, sql)
    return True


def _use_a_database_of_this_worker(worker: str, run: str) -> None:
    global _worker_database
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from devkit.store_kit import PG_DSN_ENV, pg_dsn

    base = pg_dsn()
    name = "_".join(p for p in (conninfo_to_dict(base).get("dbname") or "consentry", worker, run) if p)[:63]

    def create(conn: Any, sql: Any) -> None:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except Exception as exc:
            raise pytest.UsageError(
                f"pytest -n gives each worker a PostgreSQL database of its own, and {base!r} may not create one "
                f"({exc}): run scripts/start-postgres.sh, which grants the test role CREATEDB"
            ) from exc

    if not _on_server(base, create):
        return  # no server here: the PostgreSQL tests skip (fail under CI=true) as they do without -n
    _worker_database = (base, name)
    if "://" in base:  # keep a URL a URL: tests read its port with urlparse
        os.environ[PG_DSN_ENV] = urlunsplit(urlsplit(base)._replace(path="/" + name))
    else:
        os.environ[PG_DSN_ENV] = make_conninfo(base, dbname=name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that changes the machine itself never runs beside others: not in a worker of pytest -n."""
    if os.environ.get("PYTEST_XDIST_WORKER") and item.get_closest_marker("machine_global") is not None:
        pytest.fail(
            "machine_global tests change the machine (dpkg, /etc, systemd) and must run alone: "
            "scripts/test.sh runs them before the parallel phase; run them without -n",
            pytrace=False,
        )
