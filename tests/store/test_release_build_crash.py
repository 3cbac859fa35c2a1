"""A release build killed after the release table committed its rows, before the store recorded the build.

The table's commit and the store's record of it (state "built", the release's subjects, the audit-log
entry) are two transactions. A build process killed between them must not leave the release stuck:
running ``consentry dataset build`` again records the build, without writing the rows a second time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from admin.dataset_cmd import dataset
from devkit.components import require
from devkit.store_kit import PG_DSN_ENV, Agent, pg_dsn, postgres_available, running_store, write_policy
from protocol import b64encode
from protocol.keyfile import write_key_file
from store.backends.postgres import _LOG_LOCK
from store.releases.governance_sink import open_release_table

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str]):  # type: ignore[no-untyped-def]
    # The DSN (with its password) from the environment, as the store's commands want it (never in argv).
    return CliRunner(env={"CONSENTRY_STORE_DSN": pg_dsn()}).invoke(dataset, args, catch_exceptions=False)


def _waiting_on_the_log(conn: psycopg.Connection, pid: int) -> bool:
    """Whether process ``pid``'s store connection waits for the audit log's advisory lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = %s",
        (f"consentry-store-{pid}",),
    ).fetchone()
    return bool(row and row[0])


def test_a_build_killed_after_the_table_committed_is_finished_by_the_next_build(home: Path, tmp_path: Path) -> None:
    require(postgres_available(), "PostgreSQL", f"run: bash scripts/start-postgres.sh and set {PG_DSN_ENV}")
    data = tmp_path / "store"
    data.mkdir()
    with running_store("postgres", tmp_path, key_dir=data / "keys") as store:
        for agent in [Agent() for _ in range(5)]:
            store.enroll(agent)
            with store.client(agent) as c:
                c.upload(store.shippable(agent, 12)[1])
        policy = write_policy(tmp_path / "policy.toml", store.stewards)
        consumer = _run(["keygen", "--name", "ml-team"])
        assert consumer.exit_code == 0, consumer.output
        (data / "release-policy.toml").write_text(
            f"k_min = 5\nretention_days = 3650\n\n[consumers.keys]\n{consumer.output.strip().splitlines()[-1]}\n"
        )
        schema = store.backend.schema  # type: ignore[attr-defined]
        common = ["--data", str(data), "--backend", "postgres", "--schema", schema]
        requested = _run(
            ["request", *common, "--policy", str(policy), "--purpose", "work-pattern-research", "--category",
             "keyboard", "--from", "2023-11-13", "--to", "2023-11-16", "--description", "typing rhythm", "--json"]
        )  # fmt: skip
        assert requested.exit_code == 0, requested.output
        release_id = json.loads(requested.output)["release_id"]
        remote = ["--store-url", store.url, "--log-key", b64encode(store.keys.log.public_bytes)]
        for i, signer in enumerate(store.stewards.signers[:2]):
            write_key_file(key := tmp_path / f"steward{i}.key", "ed25519", signer.private_bytes())
            assert _run(["approve", *remote, "--key-file", str(key), release_id]).exit_code == 0

        build = ["dataset", "build", *common, "--policy", str(policy), release_id]
        with psycopg.connect(pg_dsn(), autocommit=True) as holder:
            # Another session holds the audit log: the build commits the table, then waits to log the build.
            holder.execute("SELECT pg_advisory_lock(%s)", (_LOG_LOCK,))
            child = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", *build], cwd=ROOT, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env={**os.environ, "CONSENTRY_STORE_DSN": pg_dsn()},
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while not _waiting_on_the_log(holder, child.pid):
                    assert child.poll() is None, child.communicate()
                    assert time.monotonic() < deadline, "the build never reached the audit log"
                    time.sleep(0.05)
                child.kill()  # between the table's commit and the store's record of it
            finally:
                child.wait(timeout=60)
                holder.execute("SELECT pg_advisory_unlock(%s)", (_LOG_LOCK,))

        table = open_release_table(store.settings, data, "postgres", pg_dsn(), schema)
        try:
            assert table.read(release_id).num_rows == 20  # the killed build's rows are in the table
            shown = _run(["pending", *remote, "--key-file", str(tmp_path / "steward0.key")]).output
            assert release_id in shown and "built" not in shown  # but the store never recorded the build
            again = _run(["build", *common, "--policy", str(policy), "--json", release_id])
            assert again.exit_code == 0, again.output
            assert json.loads(again.output)["rows"] == 20
            assert table.read(release_id).num_rows == 20  # recorded, not written a second time
            assert len(table.releases()) == 1
            assert "built" in _run(["pending", *remote, "--key-file", str(tmp_path / "steward0.key")]).output
            twice = _run(["build", *common, "--policy", str(policy), release_id])
            assert twice.exit_code == 1 and "already built" in twice.output
        finally:
            table.close()
