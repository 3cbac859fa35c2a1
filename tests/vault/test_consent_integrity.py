"""Consent never widens silently: policy changes, policy floors, damaged settings, changed folder scope.

Issue 7 items 1, 3, 4 and 5. Each test reproduces an attack a review made against wave 1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.app_tokens import AppResolver
from agent.cli.main import cli
from agent.gate import Circumstances, category_status
from agent.status import CaptureState
from devkit.factories import grant, keyboard_window, may_capture
from protocol.categories import Category
from protocol.errors import ConsentError, PolicyError
from tests.agent_harness import AgentProcess, agent_env
from tests.agent_harness import grant as harness_grant
from vault import batches, consent_ops, outbox
from vault.paths import Layout
from vault.policy import DEFAULT_EXCLUDED_APPS, MachinePolicy, StoreConfig, parse_policy
from vault.vault import Vault

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STORE_KEY = base64.b64encode(b"\x07" * 32).decode()
NARROW = "retention_days = 7\naggregation_window_seconds = 10\n"
WIDE = (
    "retention_days = 3650\naggregation_window_seconds = 10\n"
    f'[store]\nurl = "https://store.example.internal"\npublic_key = "{STORE_KEY}"\n'
)
SYNTHETIC = ("--replay", "synthetic:seed=11,key_rate=20,move_rate=5,file_rate=1")


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def _policy(text: str) -> MachinePolicy:
    return parse_policy(text, source="test-policy")


def _records(vault: Vault, receipt_id: str, count: int = 2) -> None:
    start = int((NOW - timedelta(hours=1)).timestamp()) // 60 * 60
    vault.write_windows([keyboard_window(start + 60 * i, receipt_id) for i in range(count)])


@pytest.fixture
def agent_factory(layout: Layout, policy_path: Path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _start(started: list[AgentProcess], layout: Layout, policy_path: Path) -> AgentProcess:
    agent = AgentProcess(layout, agent_env(layout.home, policy_path, None), *SYNTHETIC)
    started.append(agent)
    return agent


# -- item 1: a policy change never widens an existing grant ----------------------------------------


def test_receipt_hashes_every_term_shown(layout: Layout) -> None:
    policy = _policy(WIDE)
    _, text = consent_ops.notice_shown(Category.KEYBOARD, policy)
    assert "3650 days" in text and "https://store.example.internal" in text
    assert "internal-work-pattern-models" in text  # the purposes
    assert hashlib.sha256(base64.b64decode(STORE_KEY)).hexdigest()[:16] in text  # the store's key
    assert "10 seconds" in text  # the time window: how fine the record is
    with Vault.open(layout) as vault:
        receipt, _ = consent_ops.grant(vault, policy, Category.KEYBOARD, method="cli", confirmation="yes-flag", now=NOW)
    assert receipt.notice_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert receipt.retention_days == 3650 and receipt.store_key_sha256 and receipt.window_seconds == 10


def test_widening_policy_suspends_the_grant(layout: Layout) -> None:
    narrow, wide = _policy(NARROW), _policy(WIDE)
    with Vault.open(layout) as vault:
        grant(vault, Category.KEYBOARD, NOW, narrow)
        assert vault.consent(narrow).categories[Category.KEYBOARD].state == "granted"
        state = vault.consent(wide).categories[Category.KEYBOARD]
        assert state.state == "suspended"
        assert "retention 7 -> 3650 days" in (state.reason or "") and "recipient" in (state.reason or "")
        assert "consentry consent grant keyboard" in (state.reason or "")
        assert not may_capture(vault.consent(wide), Category.KEYBOARD, NOW)
        assert category_status(state, Circumstances(now=NOW), None).state is CaptureState.SUSPENDED
        # Each material change alone suspends too; a coarser window (60 s after 10 s) is narrower.
        assert (
            vault.consent(_policy("retention_days = 8\naggregation_window_seconds = 10\n"))
            .categories[Category.KEYBOARD]
            .state
            == "suspended"
        )
        assert vault.consent(_policy("retention_days = 7\n")).categories[Category.KEYBOARD].state == "granted"
        grant(vault, Category.MOUSE, NOW, _policy("retention_days = 7\n"))
        finer = vault.consent(narrow).categories[Category.MOUSE]  # 60 s -> 10 s: finer records
        assert finer.state == "suspended" and "window" in (finer.reason or "")


def test_a_store_key_change_is_material_and_a_narrowing_is_not(layout: Layout) -> None:
    wide = _policy(WIDE)
    assert wide.store is not None
    other_key = replace(wide, store=StoreConfig(url=wide.store.url, public_key=base64.b64encode(b"\x08" * 32).decode()))
    with Vault.open(layout) as vault:
        grant(vault, Category.MOUSE, NOW, wide)
        assert vault.consent(other_key).categories[Category.MOUSE].state == "suspended"
        # Shorter retention, no store any more: narrower terms, the grant stands.
        assert vault.consent(_policy(NARROW)).categories[Category.MOUSE].state == "granted"


def test_grant_after_a_widening_shows_the_new_terms_and_records_a_new_receipt(home: Path, policy_path: Path) -> None:
    policy_path.write_text(NARROW)
    first = run("consent", "grant", "keyboard", "--yes")
    assert first.exit_code == 0 and "keyboard: granted" in first.output
    again = run("consent", "grant", "keyboard", "--yes")
    assert "already granted" in again.output
    policy_path.write_text(WIDE)
    shown = json.loads(run("consent", "show", "--json").output)
    assert shown[0]["state"] == "suspended" and "retention" in shown[0]["reason"]
    regrant = run("consent", "grant", "keyboard", "--yes")
    assert regrant.exit_code == 0, regrant.output
    assert "already granted" not in regrant.output and "keyboard: granted" in regrant.output
    assert "3650 days" in regrant.output and "https://store.example.internal" in regrant.output
    assert "retention 7 -> 3650 days" in regrant.output  # what changed is said, not only shown
    with Vault.open(Layout(home)) as vault:
        assert [e.body["retention_days"] for e in vault.ledger.entries(("grant",))] == [7, 3650]


def test_records_captured_under_narrower_terms_are_never_sealed_or_shipped_under_wider_ones(
    layout: Layout,
) -> None:
    narrow = _policy(NARROW)
    wide = replace(_policy(WIDE), hold_hours=24.0)
    with Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, NOW - timedelta(hours=2), narrow)
        _records(vault, rid)
        early = batches.seal_pending(vault, narrow, NOW)  # sealed while nobody could receive it
        assert early is not None
        _records(vault, rid)  # more, not yet in a batch
        assert batches.seal_pending(vault, wide, NOW) is None
        with pytest.raises(ConsentError, match="terms"):
            batches.check_terms(vault, early.batch_id, wide)
        # Consenting again covers what is captured from now on, not what was captured before.
        consent_ops.grant(vault, wide, Category.KEYBOARD, method="cli", confirmation="yes-flag", now=NOW)
        assert batches.seal_pending(vault, wide, NOW) is None
        with pytest.raises(ConsentError, match="terms"):
            batches.check_terms(vault, early.batch_id, wide)
        batches.check_terms(vault, early.batch_id, narrow)  # under the terms it was captured with: fine


def test_agent_stops_a_category_whose_grant_the_policy_widened(
    layout: Layout, policy_path: Path, agent_factory: list[AgentProcess]
) -> None:
    policy_path.write_text(NARROW)
    harness_grant(layout, policy_path, Category.KEYBOARD)
    agent = _start(agent_factory, layout, policy_path)
    agent.wait_state("keyboard", "capturing")
    policy_path.write_text(WIDE)  # not atomic: the agent may first read half of it (the defaults, say)
    status = agent.wait_status(
        lambda s: "3650" in str(s["categories"]["keyboard"]["reason"]), "keyboard suspended under the wide policy"
    )
    assert status["categories"]["keyboard"]["state"] == "suspended"
    assert "retention 7 -> 3650 days" in status["categories"]["keyboard"]["reason"]
    result = run("consent", "grant", "keyboard", "--yes")
    assert result.exit_code == 0 and "keyboard: granted" in result.output
    agent.wait_state("keyboard", "capturing")


# -- item 3: the policy cannot remove the floors ----------------------------------------------------


def test_policy_cannot_remove_the_built_in_exclusions() -> None:
    emptied = _policy("excluded_apps = []\n")
    assert set(DEFAULT_EXCLUDED_APPS) <= set(emptied.excluded_apps)
    added = _policy('excluded_apps = ["MyBank-Client"]\n')
    assert set(DEFAULT_EXCLUDED_APPS) | {"mybank-client"} <= set(added.excluded_apps)
    resolver = AppResolver.for_policy(emptied, (), b"\x01" * 32)
    assert resolver.resolve("keepassxc").excluded and resolver.resolve("KeePassXC").excluded
    assert not resolver.resolve("firefox").excluded


@pytest.mark.parametrize("hours", ["0", "1", "23.5"])
def test_hold_below_the_floor_is_invalid(hours: str) -> None:
    with pytest.raises(PolicyError, match="hold_hours.*24"):
        _policy(f"hold_hours = {hours}\n")
    assert _policy("hold_hours = 24\n").hold_hours == 24


def test_short_hold_needs_the_explicit_test_override_and_says_so(
    home: Path, policy_path: Path, layout: Layout, agent_factory: list[AgentProcess]
) -> None:
    policy_path.write_text("hold_hours = 0\nallow_short_hold_for_testing = true\naggregation_window_seconds = 10\n")
    assert _policy(policy_path.read_text()).hold_hours == 0
    report = json.loads(run("status", "--json").output)
    assert any("allow_short_hold_for_testing" in w for w in report["warnings"])
    doctor = run("doctor")
    assert "WARN" in doctor.output and "allow_short_hold_for_testing" in doctor.output
    harness_grant(layout, policy_path, Category.KEYBOARD)
    agent = _start(agent_factory, layout, policy_path)
    agent.wait_state("keyboard", "capturing")
    assert "allow_short_hold_for_testing" in agent.stderr


# -- item 4: a damaged employee setting fails closed ------------------------------------------------


def test_damaged_exclusion_list_stops_all_capture_and_says_which_file(
    home: Path, layout: Layout, policy_path: Path, agent_factory: list[AgentProcess]
) -> None:
    policy_path.write_text("aggregation_window_seconds = 10\n")
    assert run("exclude", "add", "private-diary").exit_code == 0
    harness_grant(layout, policy_path, Category.KEYBOARD, Category.MOUSE)
    agent = _start(agent_factory, layout, policy_path)
    agent.wait_state("keyboard", "capturing")
    (layout.home / "excluded_apps.json").write_text('{"version": 1, "apps": ["private-diary"')  # truncated
    status = agent.wait_status(
        lambda s: all(s["categories"][c]["state"] == "settings_error" for c in ("keyboard", "mouse")),
        "settings_error on every granted category",
    )
    reason = status["categories"]["keyboard"]["reason"]
    assert "excluded_apps.json" in reason and "consentry exclude" in reason
    assert str(layout.home) not in json.dumps(status)
    shown = run("status", "--json")
    report = json.loads(shown.output)
    assert any("excluded_apps.json" in p for p in report["settings_problems"])
    assert "DAMAGED" in run("status").output or "cannot be read" in run("status").output
    assert run("doctor").exit_code != 0
    assert run("exclude", "clear").exit_code == 0
    agent.wait_state("keyboard", "capturing")


def test_agent_started_with_a_damaged_exclusion_list_never_captures(
    layout: Layout, policy_path: Path, agent_factory: list[AgentProcess]
) -> None:
    policy_path.write_text("aggregation_window_seconds = 10\n")
    harness_grant(layout, policy_path, Category.KEYBOARD)
    (layout.home / "excluded_apps.json").write_bytes(b"\xff\xfe not json")
    agent = _start(agent_factory, layout, policy_path)
    status = agent.wait_state("keyboard", "settings_error")
    assert "excluded_apps.json" in status["categories"]["keyboard"]["reason"]
    # Unreadable for another reason than its content: still closed.
    (layout.home / "excluded_apps.json").unlink()
    (layout.home / "excluded_apps.json").mkdir()
    agent.wait_state("keyboard", "settings_error")
    (layout.home / "excluded_apps.json").rmdir()
    agent.wait_state("keyboard", "capturing")


def test_gate_gives_settings_error_precedence_over_capturing() -> None:
    from vault.consent import CategoryConsent

    consent = CategoryConsent(category=Category.KEYBOARD, state="granted", current_notice_version=1, receipt_id="r")
    problem = "excluded_apps.json cannot be read"
    status = category_status(consent, Circumstances(now=NOW, settings_error=problem), None)
    assert status.state is CaptureState.SETTINGS_ERROR and status.reason == problem


# -- item 5: every change of the files scope is a ledger entry with a receipt -----------------------


def test_regrant_with_a_new_folder_is_a_new_receipt_covering_the_new_scope(home: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "projects", tmp_path / "secret-plans"
    first.mkdir()
    second.mkdir()
    assert run("consent", "grant", "files", "--yes", "--folder", str(first)).exit_code == 0
    same = run("consent", "grant", "files", "--yes", "--folder", str(first))
    assert "already granted" in same.output
    result = run("consent", "grant", "files", "--yes", "--folder", str(first), "--folder", str(second))
    assert result.exit_code == 0 and "files: granted" in result.output
    with Vault.open(Layout(home)) as vault:
        grants = [e.body for e in vault.ledger.entries(("grant",))]
        assert len(grants) == 2 and grants[0]["receipt_id"] != grants[1]["receipt_id"]
        assert [g["scope"]["folders"] for g in grants] == [1, 2]
        assert grants[0]["scope"]["sha256"] != grants[1]["scope"]["sha256"]
        everything = json.dumps([e.body for e in vault.ledger.entries()])
        assert "secret-plans" not in everything and str(tmp_path) not in everything
        # The scope hash is keyed: it cannot be recomputed from a guessed path outside this machine.
        plain = hashlib.sha256(str(second.resolve()).encode()).hexdigest()
        assert plain not in everything
        state = vault.consent(MachinePolicy()).categories[Category.FILES]
        assert state.state == "granted" and state.receipt_id == grants[1]["receipt_id"]


def test_folders_changed_behind_the_ledgers_back_stop_files_capture(
    home: Path, layout: Layout, policy_path: Path, tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    policy_path.write_text("aggregation_window_seconds = 10\n")
    first, second = tmp_path / "projects", tmp_path / "elsewhere"
    first.mkdir()
    second.mkdir()
    assert run("consent", "grant", "files", "keyboard", "--yes", "--folder", str(first)).exit_code == 0
    agent = _start(agent_factory, layout, policy_path)
    agent.wait_status(
        lambda s: (
            s["categories"]["files"]["state"] == "capturing" and s["categories"]["keyboard"]["state"] == "capturing"
        ),
        "files and keyboard capturing",
    )
    settings = layout.home / "watched_folders.json"
    data = json.loads(settings.read_text())
    data["folders"].append(str(second.resolve()))
    settings.write_text(json.dumps(data))  # a folder added without the employee's grant
    status = agent.wait_state("files", "settings_error")
    reason = status["categories"]["files"]["reason"]
    assert "watched_folders.json" in reason and "consentry consent grant files" in reason
    assert str(second) not in json.dumps(status)
    assert status["categories"]["keyboard"]["state"] == "capturing"  # only the files scope is in doubt
    settings.write_text("{not json")
    status = agent.wait_status(
        lambda s: "cannot be read" in (s["categories"]["files"]["reason"] or ""), "files: the list cannot be read"
    )
    assert status["categories"]["files"]["state"] == "settings_error"
    result = run("consent", "grant", "files", "--yes", "--folder", str(first), "--folder", str(second))
    assert result.exit_code == 0 and "files: granted" in result.output
    agent.wait_state("files", "capturing")


def test_files_grant_without_a_recorded_scope_does_not_capture(
    layout: Layout, policy_path: Path, tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    """A files receipt that names no scope cannot vouch for any folder list (fail closed)."""
    from agent.watched_folders import write_watched_folders

    policy_path.write_text("aggregation_window_seconds = 10\n")
    folder = tmp_path / "projects"
    folder.mkdir()
    write_watched_folders(layout, [folder])
    with Vault.open(layout) as vault:
        consent_ops.grant(
            vault, MachinePolicy(aggregation_window_seconds=10), Category.FILES, method="api",
            confirmation="yes-flag", now=datetime.now(UTC),
        )  # fmt: skip
    agent = _start(agent_factory, layout, policy_path)
    status = agent.wait_state("files", "settings_error")
    assert "watched_folders.json" in status["categories"]["files"]["reason"]


def test_no_path_in_status_for_any_settings_problem(layout: Layout) -> None:
    os.makedirs(layout.home, exist_ok=True)
    (layout.home / "watched_folders.json").write_text('{"version": 1, "folders": ["relative/x"]}')
    from agent.watched_folders import read_watched_folders

    with pytest.raises(ValueError) as info:
        read_watched_folders(layout)
    assert str(layout.home) not in str(info.value) and "watched_folders.json" in str(info.value)


def test_a_store_added_later_receives_nothing_captured_when_there_was_none(layout: Layout, tmp_path: Path) -> None:
    """The reported attack end to end: records captured under "recipients: nobody", a store added by
    policy afterwards, a sync against that real store: nothing is submitted, and the batch says why."""
    from agent import shipping
    from devkit.store_kit import Stewards, running_store
    from protocol import b64encode
    from store.auth import issue_token

    now = datetime.now(UTC).replace(microsecond=0)
    nobody = MachinePolicy(retention_days=7)
    with running_store("dir", tmp_path, Stewards.make(1, 1)) as store, Vault.open(layout) as vault:
        rid = grant(vault, Category.KEYBOARD, now - timedelta(hours=3), nobody)
        start = int(now.timestamp()) // 60 * 60 - 3600
        vault.write_windows([keyboard_window(start, rid), keyboard_window(start + 60, rid)])
        info = batches.seal_pending(vault, nobody, now)
        assert info is not None
        batches.release(vault, info.batch_id, now)  # the employee let it go: to nobody
        keys = {"s0": b64encode(store.stewards.signers[0].public_bytes)}
        with_store = MachinePolicy(
            retention_days=3650,
            store=StoreConfig(
                url=store.url,
                public_key=b64encode(store.keys.seal.public_bytes),
                log_key=b64encode(store.keys.log.public_bytes),
            ),
            stewards={"keys": keys, "approvals_required": 1},
        )
        shipping.enroll(vault, with_store, issue_token(store.backend, store.settings, int(now.timestamp())), now)
        report = shipping.sync(vault, with_store, now)
        assert report.submitted == [] and report.shipped == []
        kept = outbox.get_batch(vault, info.batch_id)
        assert kept.state == "released" and "narrower terms" in (kept.last_error or "")
        assert store.stored() == (0, 0, store.stored()[2])
        with store.backend.transaction() as tx:
            assert tx.stored_batches() == []


def test_raising_retention_never_keeps_earlier_records_longer_than_their_grant_said(layout: Layout) -> None:
    from vault.shredding import apply_retention

    now = datetime.now(UTC).replace(microsecond=0)
    day = int(now.timestamp()) // 86400 * 86400
    week = MachinePolicy(retention_days=7)
    decade = MachinePolicy(retention_days=3650)
    with Vault.open(layout) as vault:
        short = grant(vault, Category.KEYBOARD, now - timedelta(days=20), week)
        long = grant(vault, Category.MOUSE, now - timedelta(days=20), decade)
        from devkit.factories import mouse_window

        vault.write_windows([keyboard_window(day - 86400 * 10, short), mouse_window(day - 86400 * 10, long)])
        assert apply_retention(vault, decade, now)  # the policy now says 3650 days: keyboard's grant said 7
        assert [w.category for w in vault.read_windows()] == ["mouse"]  # mouse was granted for 3650 days


def test_status_says_why_a_grant_is_suspended_without_an_agent(home: Path, policy_path: Path) -> None:
    policy_path.write_text(NARROW)
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    policy_path.write_text(WIDE)
    shown = run("status")
    line = next(line for line in shown.output.splitlines() if line.startswith("mouse"))
    assert "suspended" in line and "retention 7 -> 3650 days" in line
