"""A truncated, restored or extended-by-hand consent ledger is caught by the signed head outside the vault.

The attacks are done the way someone with write access to the vault file would: sqlite3 around the
append-only triggers, or copying an old vault file back. The CLI runs for real (CliRunner) and the
agent as a real subprocess on a synthetic input source.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from protocol.canonical import canonical_json
from protocol.timeutil import iso, utc_now
from tests.agent_harness import AgentProcess, agent_env, records
from tests.vault.tampering import edit_around_triggers
from vault.ledger import chain_hash
from vault.ledger_head import read_head, sign_head, write_head
from vault.paths import Layout
from vault.vault import Vault

SHORT_WINDOW_POLICY = "aggregation_window_seconds = 10\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _delete_last_entry(layout: Layout) -> None:
    edit_around_triggers(layout, "DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)")


def _consent(category: str) -> dict[str, object]:
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    entry: dict[str, object] = json.loads(result.output)["categories"][category]
    return entry


def _granted_then_revoked(home: Path) -> Layout:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert run("consent", "revoke", "keyboard").exit_code == 0
    return Layout(home)


def test_deleting_the_tail_revoke_is_named_by_verify_status_and_doctor(home: Path) -> None:
    layout = _granted_then_revoked(home)
    assert run("ledger", "verify").exit_code == 0
    _delete_last_entry(layout)  # the revoke is gone; the chain that is left is intact

    verify = run("ledger", "verify")
    assert verify.exit_code == 1 and "ledger rolled back" in verify.output, verify.output
    assert "accept-rollback" in verify.output and "Traceback" not in verify.output
    entry = _consent("keyboard")
    assert entry["consent"] != "granted" and "rolled back" in str(entry["reason"])
    status = run("status")
    assert "Ledger: ROLLED BACK" in status.output
    doctor = run("doctor", "--json")
    assert doctor.exit_code == 1
    head_check = next(c for c in json.loads(doctor.output.split("\nError")[0]) if c["check"] == "ledger head")
    assert head_check["result"] == "FAIL" and "rolled back" in head_check["detail"]


def test_a_rolled_back_ledger_stops_the_real_agent(home: Path, policy_path: Path) -> None:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    layout = _granted_then_revoked(home)
    _delete_last_entry(layout)
    agent = AgentProcess(layout, agent_env(home, policy_path, None), "--replay", "synthetic:seed=3,key_rate=20")
    try:
        status = agent.wait_state("keyboard", "suspended")
        assert "rolled back" in status["categories"]["keyboard"]["reason"]
    finally:
        assert agent.stop() == 0
    assert records(layout) == []


def test_restoring_an_old_copy_of_the_vault_is_caught(home: Path, tmp_path: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    layout = Layout(home)
    old = tmp_path / "old-copy.sqlite3"
    src, dst = sqlite3.connect(layout.vault_db), sqlite3.connect(old)
    src.backup(dst)  # a consistent copy, as a backup tool would take it
    dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    src.close()
    dst.close()
    assert run("consent", "revoke", "keyboard").exit_code == 0
    for suffix in ("-wal", "-shm"):
        Path(str(layout.vault_db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(old, layout.vault_db)

    assert _consent("keyboard")["consent"] != "granted"
    verify = run("ledger", "verify", "--json")
    assert verify.exit_code == 1
    assert json.loads(verify.output.split("\nError")[0])["head"]["status"] == "rolled-back"


def test_a_deleted_head_file_is_tampering_not_a_fresh_start(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    layout = Layout(home)
    (layout.key_dir / "ledger-head").unlink()
    assert _consent("keyboard")["consent"] != "granted"
    verify = run("ledger", "verify")
    assert verify.exit_code == 1 and "missing" in verify.output


def test_an_altered_head_file_is_caught(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    path = Layout(home).key_dir / "ledger-head"
    data = json.loads(path.read_text())
    data["seq"] -= 1  # pretend the head is older, to hide a deleted entry
    path.write_text(json.dumps(data))
    assert _consent("keyboard")["consent"] != "granted"
    assert "does not verify" in run("ledger", "verify").output


def test_a_grant_appended_by_hand_past_the_signed_head_is_refused(home: Path) -> None:
    """A valid-looking chain entry added with sqlite3 was never signed by the device: not trusted."""
    layout = _granted_then_revoked(home)
    with Vault.open(layout) as vault:
        grant = next(vault.ledger.entries(("grant",)))
        seq, prev = vault.ledger.head()
    body = {**grant.body, "seq": seq + 1, "at": iso(utc_now()), "v": 1}
    edit_around_triggers(
        layout,
        "INSERT INTO ledger (seq, kind, at, body, prev_hash, hash) VALUES (?, 'grant', ?, ?, ?, ?)",
        seq + 1,
        body["at"],
        canonical_json(body).decode(),
        prev,
        chain_hash(prev, body),
    )
    with Vault.open(layout) as vault:
        assert vault.ledger.verify(vault.device_key.public_bytes).ok  # the chain alone is fine
    entry = _consent("keyboard")
    assert entry["consent"] != "granted" and "never signed" in str(entry["reason"])


def test_while_rolled_back_grant_is_refused_but_withdrawal_works(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    layout = Layout(home)
    assert run("consent", "revoke", "mouse").exit_code == 0
    _delete_last_entry(layout)
    refused = run("consent", "grant", "apps", "--yes")
    assert refused.exit_code == 1 and "rolled back" in refused.output and "Traceback" not in refused.output
    assert run("consent", "revoke", "keyboard", "mouse").exit_code == 0
    with Vault.open(layout) as vault:
        kinds = [e.kind for e in vault.ledger.entries()]
    assert kinds[-1] == "revoke" and kinds.count("grant") == 2


def test_accept_rollback_records_it_withdraws_everything_and_reanchors(home: Path) -> None:
    layout = _granted_then_revoked(home)
    _delete_last_entry(layout)
    lost = read_head(layout.key_dir / "ledger-head")
    declined = CliRunner().invoke(cli, ["ledger", "accept-rollback"], input="n\n")
    assert declined.exit_code == 1 and _consent("keyboard")["consent"] != "granted"

    accepted = run("ledger", "accept-rollback", "--yes")
    assert accepted.exit_code == 0, accepted.output
    assert run("ledger", "verify").exit_code == 0
    with Vault.open(layout) as vault:
        entry = list(vault.ledger.entries())[-1]
    assert entry.kind == "ledger-rollback-accepted"
    assert entry.body["lost_head_seq"] == getattr(lost, "seq", None) and entry.body["problem"] == "rolled-back"
    assert _consent("keyboard")["consent"] == "revoked"  # the deleted revoke is not undone by accepting
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    assert _consent("keyboard")["consent"] == "granted"


def test_crash_windows_around_commit_are_accepted_but_nothing_more(home: Path) -> None:
    """The head names the new state with the old one as prev until the commit settles."""
    layout = _granted_then_revoked(home)
    with Vault.open(layout) as vault:
        after = vault.ledger.head()
        before = (after[0] - 1, vault.ledger.hash_at(after[0] - 1) or "")
        # Written before COMMIT, never settled (crash right after COMMIT): the database is at `after`.
        write_head(vault.head_file, sign_head(vault.device_key, vault.vault_id, after, before, iso(utc_now())))
        assert vault.ledger_head_state().ok
        two_back = (after[0] - 2, vault.ledger.hash_at(after[0] - 2) or "")
        # The same head when the commit itself never happened (crash before COMMIT): database at `before`.
        assert vault.ledger_head_state(db_head=before).ok
        # But never further back than that.
        assert vault.ledger_head_state(db_head=two_back).status == "rolled-back"


def test_a_withdrawal_without_the_vault_key_is_kept_and_accepted(home: Path, tmp_path: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    layout = Layout(home)
    kek = layout.kek_file
    saved = tmp_path / "kek"
    shutil.move(kek, saved)
    assert run("consent", "revoke", "keyboard").exit_code == 0  # withdrawing never needs the key
    shutil.move(saved, kek)
    assert _consent("keyboard")["consent"] == "revoked"
    assert run("ledger", "verify").exit_code == 0
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0  # re-signs over the revoke
    head = read_head(layout.key_dir / "ledger-head")
    with Vault.open(layout) as vault:
        assert getattr(head, "seq", None) == vault.ledger.head()[0]


def test_head_file_is_private_and_beside_the_key(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    path = Layout(home).key_dir / "ledger-head"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not list(path.parent.glob(".*.tmp"))


V2 = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "ledger-v2.json").read_text())


def test_known_answer_v2_chain_digests_and_signed_head() -> None:
    from protocol import LedgerLink, extend_chain
    from protocol.signing import SigningKey, is_valid_signature
    from vault.ledger import LEDGER_START_HASH, entry_digest
    from vault.ledger_head import SignedHead

    prev = LEDGER_START_HASH
    for body, digest, expected in zip(V2["bodies"], V2["digests"], V2["hashes"], strict=True):
        assert entry_digest(body) == digest
        prev = chain_hash(prev, body)
        assert prev == expected
    # The store's recomputation from digests alone gives the same chain.
    assert extend_chain(LEDGER_START_HASH, [LedgerLink(digest=d) for d in V2["digests"]]) == V2["hashes"]
    key = SigningKey(bytes.fromhex(V2["head"]["private_key"]))
    head = SignedHead(**V2["head"]["file"])
    assert is_valid_signature(key.public_bytes, head.signed_bytes(), bytes.fromhex(head.signature))
    again = sign_head(key, head.vault_id, (head.seq, head.head_hash), (2, V2["hashes"][1]), head.at)
    assert again.signature == head.signature  # Ed25519 is deterministic


@pytest.mark.parametrize(
    "edit",
    [
        lambda f: {**f, "extra": 1},
        lambda f: {**f, "seq": str(f["seq"])},
        lambda f: {**f, "seq": -1},
        lambda f: {**f, "head_hash": f["head_hash"].upper()},
        lambda f: {**f, "signature": f["signature"][:-2]},
        lambda f: {**f, "v": 2},
        lambda f: {k: v for k, v in f.items() if k != "device_kid"},
        lambda f: [f],
    ],
)
def test_a_head_file_out_of_shape_is_unreadable_not_trusted(tmp_path: Path, edit) -> None:
    from vault.ledger_head import SignedHead, UnreadableHead

    path = tmp_path / "ledger-head"
    path.write_text(json.dumps(V2["head"]["file"]))
    assert isinstance(read_head(path), SignedHead)  # the control: the frozen head reads back
    path.write_text(json.dumps(edit(V2["head"]["file"])))
    assert isinstance(read_head(path), UnreadableHead)
