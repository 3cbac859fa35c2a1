"""A home backup put back (vault file and signed head together) does not bring a withdrawn grant back
(issue 14, section 4): the store witnessed the later ledger, and the agent asks it before capturing.

Everything is real: ``consentry store serve`` on 127.0.0.1 (dir backend), the CLI (`enroll`, `consent`,
`status`, `doctor`, `ledger accept-rollback`), the agent as a subprocess on a synthetic input source, and
a backup made by copying the files of the Consentry home as a backup tool would (agent stopped).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from devkit.store_kit import Stewards, StoreProcess, free_port, write_policy
from protocol import b64encode
from store.keys import StoreKeys
from tests.agent_harness import AgentProcess, agent_env
from vault import outbox
from vault.paths import Layout
from vault.vault import Vault

SYNTHETIC = ("--replay", "synthetic:seed=21,key_rate=20")
BACKED_UP = ("vault.sqlite3", "vault.sqlite3-wal", "vault.sqlite3-shm", "keys/ledger-head")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def store(tmp_path: Path, home: Path, policy_path: Path) -> Iterator[StoreProcess]:
    """A real store, a machine policy naming it, and this computer enrolled with it."""
    stewards = Stewards.make(1, 1)
    data = tmp_path / "store"
    proc = StoreProcess(data, write_policy(tmp_path / "store-policy.toml", stewards), backend="dir", port=free_port())
    proc.start()
    try:
        keys, _ = StoreKeys.load_or_create(data / "keys")
        steward = b64encode(stewards.signers[0].public_bytes)
        policy_path.write_text(
            "aggregation_window_seconds = 10\n"
            f'[store]\nurl = "{proc.url}"\npublic_key = "{b64encode(keys.seal.public_bytes)}"\n'
            f'log_key = "{b64encode(keys.log.public_bytes)}"\n'
            f'[stewards]\napprovals_required = 1\n[stewards.keys]\nsteward0 = "{steward}"\n'
        )
        token = json.loads(run("store", "token", "--data", str(data), "--json").output)["token"]
        token_file = tmp_path / "token"
        token_file.write_text(token)
        enrolled = run("enroll", "--token-file", str(token_file))
        assert enrolled.exit_code == 0, enrolled.output
        yield proc
    finally:
        proc.stop()


def _agent(home: Path, policy_path: Path) -> AgentProcess:
    return AgentProcess(Layout(home), agent_env(home, policy_path, None), *SYNTHETIC)


def _witnessed(agent: AgentProcess, seq: int) -> None:
    """Wait until the store acknowledged a checkpoint at ``seq`` or later (kept in the vault's outbox)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with Vault.open(agent.layout) as vault:
            if (outbox.witnessed_seq(vault) or 0) >= seq:
                return
        time.sleep(0.2)
    raise AssertionError(f"the store did not witness entry {seq}; agent log:\n{agent.stderr}")


def _head_seq(home: Path) -> int:
    with Vault.open(Layout(home)) as vault:
        return vault.ledger.head()[0]


def _backup(home: Path, to: Path) -> None:
    for name in BACKED_UP:
        if (home / name).exists():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(home / name, to / name)


def _restore(backup: Path, home: Path) -> None:
    for name in BACKED_UP:
        (home / name).unlink(missing_ok=True)
        if (backup / name).exists():
            shutil.copy2(backup / name, home / name)


def test_a_restored_backup_from_before_a_revoke_does_not_capture(
    store: StoreProcess, home: Path, policy_path: Path, tmp_path: Path
) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    agent = _agent(home, policy_path)
    try:
        agent.wait_state("keyboard", "capturing")
        _witnessed(agent, _head_seq(home))
    finally:
        assert agent.stop() == 0
    backup = tmp_path / "home-backup"
    _backup(home, backup)  # the nightly home backup, taken while keyboard was granted

    agent = _agent(home, policy_path)
    try:
        agent.wait_state("keyboard", "capturing")
        assert run("consent", "revoke", "keyboard").exit_code == 0
        agent.wait_state("keyboard", "revoked")
        _witnessed(agent, _head_seq(home))  # the agent showed the store the withdrawal
    finally:
        assert agent.stop() == 0

    _restore(backup, home)  # the employee (or IT) puts the backup back: vault file and signed head
    assert run("ledger", "verify").exit_code == 0  # the computer alone cannot tell: both files agree

    with Vault.open(Layout(home)) as vault:
        kept = vault.count_windows("keyboard")
    agent = _agent(home, policy_path)
    try:
        status = agent.wait_status(
            lambda s: (s.get("ledger_witness") or {}).get("state") == "contradicted", "the store's answer"
        )
        reason = status["categories"]["keyboard"]["reason"]
        assert status["categories"]["keyboard"]["state"] == "suspended"
        assert "store has seen a later state" in reason and "accept-rollback" in reason
        text = run("status").output
        assert "Store check: CONTRADICTED" in text and "restored backup" in text
        time.sleep(1.5)  # the agent's loop ran several times: still nothing
        assert agent.status()["categories"]["keyboard"]["state"] == "suspended"  # type: ignore[index]
    finally:
        assert agent.stop() == 0
    doctor = run("doctor", "--json")
    check = next(c for c in json.loads(doctor.output.split("\nError")[0]) if c["check"] == "store witness")
    assert check["result"] == "FAIL" and "later state" in check["detail"]
    with Vault.open(Layout(home)) as vault:  # nothing was written under the grant the backup brought back
        assert vault.count_windows("keyboard") == kept


def test_accepting_what_the_store_saw_withdraws_everything_then_a_new_grant_captures(
    store: StoreProcess, home: Path, policy_path: Path, tmp_path: Path
) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    backup = tmp_path / "home-backup"
    agent = _agent(home, policy_path)
    try:
        agent.wait_state("keyboard", "capturing")
    finally:
        assert agent.stop() == 0
    _backup(home, backup)
    agent = _agent(home, policy_path)
    try:
        agent.wait_state("keyboard", "capturing")
        assert run("consent", "revoke", "keyboard").exit_code == 0
        _witnessed(agent, _head_seq(home))
    finally:
        assert agent.stop() == 0
    _restore(backup, home)

    accepted = run("ledger", "accept-rollback", "--yes")
    assert accepted.exit_code == 0, accepted.output
    assert "store" in accepted.output
    assert json.loads(run("status", "--json").output)["categories"]["keyboard"]["consent"] == "revoked"
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    agent = _agent(home, policy_path)
    try:
        status = agent.wait_state("keyboard", "capturing")
        assert status["ledger_witness"]["state"] == "accepted"
    finally:
        assert agent.stop() == 0


def test_capture_waits_for_the_store_at_start_and_begins_when_it_answers(
    store: StoreProcess, home: Path, policy_path: Path
) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    store.stop()
    agent = _agent(home, policy_path)
    try:
        first = agent.wait_state("keyboard", "suspended")  # from the first status on: nothing before the answer
        assert "capture starts when" in first["categories"]["keyboard"]["reason"]
        status = agent.wait_status(
            lambda s: (s.get("ledger_witness") or {}).get("state") == "unreachable", "the store to be unreachable"
        )
        assert "waiting for the store" in status["categories"]["keyboard"]["reason"]
        assert status["categories"]["keyboard"]["state"] == "suspended"
        store.start()
        agent.wait_state("keyboard", "capturing", timeout=60)  # retried with backoff
    finally:
        assert agent.stop() == 0


def test_without_a_store_nothing_waits(home: Path, policy_path: Path) -> None:
    policy_path.write_text("aggregation_window_seconds = 10\n")
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    agent = _agent(home, policy_path)
    try:
        status = agent.wait_state("keyboard", "capturing")
        assert status["ledger_witness"]["state"] == "not-configured"
    finally:
        assert agent.stop() == 0
    doctor = json.loads(run("doctor", "--json").output)
    check = next(c for c in doctor if c["check"] == "store witness")
    assert check["result"] == "ok" and "cannot detect" in check["detail"]


def test_a_revoke_with_no_agent_running_is_witnessed_at_once(
    store: StoreProcess, home: Path, policy_path: Path, tmp_path: Path
) -> None:
    """The backup is put back before any agent ran again: the store still saw the withdrawal."""
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    backup = tmp_path / "home-backup"
    _backup(home, backup)
    revoked = run("consent", "revoke", "keyboard")
    assert revoked.exit_code == 0 and "The store has witnessed this withdrawal" in revoked.output, revoked.output
    _restore(backup, home)
    agent = _agent(home, policy_path)
    try:
        status = agent.wait_status(
            lambda s: (s.get("ledger_witness") or {}).get("state") == "contradicted", "the store's answer"
        )
        assert status["categories"]["keyboard"]["state"] == "suspended"
    finally:
        assert agent.stop() == 0
