"""What the CLI says is what happened: no claim of a change that did not happen, no bare "Aborted!",
no Python error for a closed pipe, plain counts, and a stopping agent never mistaken for a running one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli
from devkit.factories import mouse_window, receipt_for
from protocol.categories import Category
from tests.agent_harness import SHORT_WINDOW_POLICY, AgentProcess, agent_env
from vault.paths import Layout
from vault.policy import MachinePolicy
from vault.vault import Vault

REPLAY = ("--replay", "synthetic:seed=5,key_rate=20,move_rate=0")


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def consentry(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (the CLI talks to a real agent through its socket)."""
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60)


def test_revoking_twice_says_nothing_changed_and_claims_no_confirmation(layout: Layout, policy_path: Path) -> None:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    assert consentry("consent", "grant", "keyboard", "--yes").returncode == 0
    agent = AgentProcess(layout, agent_env(layout.home, policy_path, None), *REPLAY)
    try:
        agent.wait_state("keyboard", "capturing")
        first = consentry("consent", "revoke", "keyboard")
        assert first.returncode == 0, first.stderr
        assert "keyboard: withdrawn" in first.stdout and "running agent confirmed" in first.stdout
        again = consentry("consent", "revoke", "keyboard", "mouse")
        assert again.returncode == 0, again.stderr
        assert "keyboard: already withdrawn; nothing changed." in again.stdout
        assert "mouse: was never granted; nothing changed." in again.stdout
        assert "confirmed" not in again.stdout and "was not granted" not in again.stdout
    finally:
        assert agent.stop() == 0
    with Vault.open(layout) as vault:
        assert len(list(vault.ledger.entries(("revoke",)))) == 1


def test_granting_a_granted_category_says_so_without_the_notice_or_a_question(home: Path) -> None:
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    again = run("consent", "grant", "keyboard")  # no --yes, and no terminal to answer a question
    assert again.exit_code == 0, again.output
    assert "keyboard: already granted" in again.output and "nothing changed" in again.output
    assert "What is never kept" not in again.output and "Aborted" not in again.output
    with Vault.open(Layout(home)) as vault:
        assert len(list(vault.ledger.entries(("grant",)))) == 1


@pytest.mark.parametrize(("typo", "meant"), [("stauts", "status"), ("mydat", "mydata"), ("erse", "erase")])
def test_a_mistyped_command_gets_a_suggestion(home: Path, typo: str, meant: str) -> None:
    result = CliRunner().invoke(cli, [typo])
    assert result.exit_code == 2
    assert f"No such command '{typo}'. Did you mean '{meant}'?" in result.output


@pytest.mark.parametrize("args", [("status",), ("consent", "show"), ("ledger", "show"), ("status", "--json")])
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(home: Path, args: tuple[str, ...]) -> None:
    assert run("pause", "--for", "1h").exit_code == 0  # a vault with a few ledger entries to show
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `consentry status | head -0`: every write meets a closed pipe
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agent", *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""  # no "Broken pipe" error, no Python message at exit
    assert proc.returncode == 1


def test_erase_without_a_terminal_says_how_to_confirm_and_erases_nothing(home: Path) -> None:
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    result = run("erase", "--category", "mouse")  # no terminal, no --yes
    assert result.exit_code == 1
    assert "nothing was erased" in result.output and "--yes" in result.output
    assert result.output.strip().splitlines()[-1] != "Aborted!"
    with Vault.open(Layout(home)) as vault:
        assert not list(vault.ledger.entries(("erase",)))


def test_grant_without_a_terminal_says_how_to_confirm_and_grants_nothing(home: Path) -> None:
    result = run("consent", "grant", "mouse")
    assert result.exit_code == 1
    assert "What is never kept" in result.output  # the notice was shown first
    assert "nothing was granted" in result.output and "--yes" in result.output
    assert "Aborted!" not in result.output
    assert run("consent", "show", "--json").output.count('"granted"') == 0


def test_a_sparse_keyboard_window_reads_as_such_in_mydata(home: Path) -> None:
    from protocol.windows import KEYBOARD_MIN_PRESSES, KeyboardWindow

    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    with Vault.open(Layout(home)) as vault:
        receipt = receipt_for(vault.consent(MachinePolicy()), Category.KEYBOARD)
        assert receipt is not None
        start = int(datetime.now(UTC).timestamp()) // 60 * 60
        sparse = KeyboardWindow.sparse_window(start, start + 60, receipt)
        vault.write_windows([sparse])
    shown = run("mydata").output
    assert f"too few presses to keep any count (sparse window: under {KEYBOARD_MIN_PRESSES} presses)" in shown


def test_counts_read_as_plain_words(home: Path) -> None:
    Vault.open(Layout(home), create=True).close()
    verify = run("ledger", "verify")
    entries = int(verify.output.split("Ledger OK: ")[1].split()[0])
    assert f"{entries} {'entry' if entries == 1 else 'entries'}," in verify.output
    assert run("consent", "grant", "mouse", "--yes").exit_code == 0
    with Vault.open(Layout(home)) as vault:
        receipt = receipt_for(vault.consent(MachinePolicy()), Category.MOUSE)
        assert receipt is not None
        vault.write_windows([mouse_window(int(datetime.now(UTC).timestamp()) // 60 * 60, receipt)])
    shown = run("mydata")
    assert ": 1 record of 1 record stored." in shown.output and "(s)" not in shown.output
    erased = run("consent", "revoke", "mouse", "--erase")
    assert "1 data key destroyed" in erased.output and "(s)" not in erased.output
    assert "(s)" not in run("ledger", "verify").output


def test_an_agent_started_while_the_last_one_is_stopping_waits_for_it_and_runs(
    layout: Layout, policy_path: Path
) -> None:
    policy_path.write_text(SHORT_WINDOW_POLICY)
    env = agent_env(layout.home, policy_path, None)
    first = AgentProcess(layout, env, *REPLAY)
    first.wait_status(lambda s: True, "the first agent's status")
    # Told to stop, and held in the middle of stopping (as a slow final flush would hold it).
    first.proc.send_signal(signal.SIGTERM)
    first.proc.send_signal(signal.SIGSTOP)
    second = AgentProcess(layout, env, *REPLAY)
    try:
        time.sleep(1.0)  # the second one starts and finds the lock still held
        first.proc.send_signal(signal.SIGCONT)
        assert first.proc.wait(timeout=20) == 0
        second.wait_status(lambda s: s["agent_state"] == "running", "the second agent to run")
        assert "already running" not in second.stderr
    finally:
        first.proc.send_signal(signal.SIGCONT)
        first.stop()
        assert second.stop() == 0
