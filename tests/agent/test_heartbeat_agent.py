"""Real agent processes enroll with IT's secret on first start and send heartbeats alike (issue 16 §2).

Two ``consentry agent run`` processes against a real store on 127.0.0.1: one employee granted a category,
the other nothing. Both enroll their own device key with the enrollment secret beside the machine policy
(no token file), both heartbeat at start, and the operator's report cannot tell them apart. Retired by IT,
a restarted agent learns it, and ``consentry status`` says so in words.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devkit.store_kit import running_store
from protocol import SigningKey, b64encode
from protocol.categories import Category
from store import fleet_db
from store.enrollment import create_secret, retire_device
from tests.agent_harness import AgentProcess, agent_env, grant
from vault.paths import Layout

ROOT = Path(__file__).resolve().parents[2]
IDENTITY_FIELDS = ("device_kid", "enrolled_at", "last_seen", "clock_skew_seconds")


def _wait(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _state(layout: Layout) -> dict:  # type: ignore[type-arg]
    try:
        return dict(json.loads((layout.home / "fleet-state.json").read_text()))
    except (OSError, ValueError):
        return {}


def test_real_agents_enroll_with_the_secret_and_heartbeat_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The grants below are written in this process: keep their vault keys in files, as the agents do
    # (agent_env), whatever keyring an earlier test left configured in this process.
    monkeypatch.setenv("CONSENTRY_KEYSTORE", "file")
    with running_store("dir", tmp_path / "store") as live:
        policy_path = tmp_path / "etc" / "policy.toml"
        policy_path.parent.mkdir()
        policy_path.write_text(
            f'[store]\nurl = "{live.url}"\npublic_key = "{b64encode(live.keys.seal.public_bytes)}"\n'
            f'log_key = "{b64encode(live.keys.log.public_bytes)}"\n',
            encoding="utf-8",
        )
        secret = create_secret(live.backend, "eng", now=int(time.time()), valid_seconds=3600, per_hour=10).secret
        (policy_path.parent / "enroll-secret").write_text(secret + "\n", encoding="utf-8")
        layouts = {True: Layout(tmp_path / "granted"), False: Layout(tmp_path / "nothing")}
        grant(layouts[True], policy_path, Category.MOUSE)
        agents = {c: AgentProcess(lay, agent_env(lay.home, policy_path, None)) for c, lay in layouts.items()}
        try:
            kids = {c: _wait(lambda lay=lay: _state(lay).get("last_heartbeat_at") and _state(lay)["device_kid"],
                             "a heartbeat") for c, lay in layouts.items()}  # fmt: skip
        finally:
            codes = {c: a.stop() for c, a in agents.items()}
        assert codes == {True: 0, False: 0}, {c: a.stderr for c, a in agents.items()}
        for agent in agents.values():
            assert secret not in agent.stderr
        operator = SigningKey.generate()
        with live.backend.transaction() as tx:
            fleet_db.add_operator(fleet_db.as_query(tx), operator.kid, "it", b64encode(operator.public_bytes), 1)
        from kit.store_client import StoreClient

        with StoreClient(live.url, signer=operator, role="operator") as client:
            report = client.fleet()
        rows = {d.device_kid: d.model_dump(mode="json") for d in report.devices}
        masked = {c: {k: v for k, v in rows[kid].items() if k not in IDENTITY_FIELDS} for c, kid in kids.items()}
        assert masked[True] == masked[False]
        assert rows[kids[True]]["last_seen"] is not None and rows[kids[False]]["last_seen"] is not None
        # IT retires the consenting employee's computer; the agent learns it at its next heartbeat.
        retire_device(live.backend, kids[True], int(time.time()))
        again = AgentProcess(layouts[True], agent_env(layouts[True].home, policy_path, None))
        try:
            _wait(lambda: _state(layouts[True]).get("retired"), "the retired state")
        finally:
            assert again.stop() == 0, again.stderr
        env = agent_env(layouts[True].home, policy_path, None)
        status = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", "status"], env=env, cwd=ROOT, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert "RETIRED by IT" in status.stdout and "Ask IT to enroll it again" in status.stdout
