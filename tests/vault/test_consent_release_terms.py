"""More terms that widen (issue 14, section 5): the release and exclusion terms are part of every grant.

A lower hold, a longer pseudonym period, an IT exclusion removed, new application categories, fewer
steward approvals or another set of stewards each widen what the employee agreed to: the grant is
suspended, `consent show` says what changed, and granting again shows the new terms and records them.
The opposite change (a narrowing) leaves the grant in force. Each test writes the real policy file and
runs the real CLI against a real vault.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner, Result

from agent.cli.main import cli
from vault.paths import Layout
from vault.vault import Vault

STEWARD_A, STEWARD_B, STEWARD_C = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _stewards(required: int, *keys: str) -> str:
    lines = ["[stewards]", f"approvals_required = {required}", "[stewards.keys]"]
    lines += [f'steward{i} = "{key}"' for i, key in enumerate(keys)]
    return "\n".join(lines) + "\n"


def _state(category: str) -> dict[str, str]:
    shown = json.loads(run("consent", "show", "--json").output)
    entry: dict[str, str] = next(e for e in shown if e["category"] == category)
    return entry


def _widening_suspends_then_regrant_covers(
    policy_path: Path, home: Path, category: str, before: str, after: str, narrower: str, says: str, shows: str
) -> None:
    """Grant under ``before``; ``narrower`` keeps it; ``after`` suspends it saying ``says``; grant again."""
    policy_path.write_text(before)
    assert run("consent", "grant", category, "--yes").exit_code == 0
    assert _state(category)["state"] == "granted"

    policy_path.write_text(narrower)
    assert _state(category)["state"] == "granted", "a narrowing is not material"

    policy_path.write_text(after)
    suspended = _state(category)
    assert suspended["state"] == "suspended", suspended
    assert says in suspended["reason"] and f"consentry consent grant {category}" in suspended["reason"]
    status = run("status").output
    assert says in status  # status says why, without an agent

    regrant = run("consent", "grant", category, "--yes")
    assert regrant.exit_code == 0, regrant.output
    assert "already granted" not in regrant.output and says in regrant.output  # what changed is said
    assert shows in regrant.output  # and the new terms are shown
    assert _state(category)["state"] == "granted"
    with Vault.open(Layout(home)) as vault:
        assert len(list(vault.ledger.entries(("grant",)))) == 2  # a new receipt covers the new terms


def test_a_lower_hold_is_material(home: Path, policy_path: Path) -> None:
    _widening_suspends_then_regrant_covers(
        policy_path, home, "keyboard",
        before="hold_hours = 48\n", after="hold_hours = 24\n", narrower="hold_hours = 72\n",
        says="hold before release 48 -> 24 hours", shows="Hold before a batch is sent for review: 24 hours",
    )  # fmt: skip


def test_a_longer_subject_rotation_is_material(home: Path, policy_path: Path) -> None:
    _widening_suspends_then_regrant_covers(
        policy_path, home, "mouse",
        before="subject_rotation_days = 7\n", after="subject_rotation_days = 90\n",
        narrower="subject_rotation_days = 1\n",
        says="the same pseudonym kept 7 -> 90 days", shows="a new one every 90 days",
    )  # fmt: skip


def test_an_it_exclusion_removed_is_material(home: Path, policy_path: Path) -> None:
    _widening_suspends_then_regrant_covers(
        policy_path, home, "keyboard",
        before='excluded_apps = ["payroll-desktop", "hr-portal"]\n', after='excluded_apps = ["hr-portal"]\n',
        narrower='excluded_apps = ["payroll-desktop", "hr-portal", "mail"]\n',
        says="1 application(s) no longer excluded from capture", shows="Applications during which nothing is captured",
    )  # fmt: skip


def test_new_app_categories_are_material(home: Path, policy_path: Path) -> None:
    _widening_suspends_then_regrant_covers(
        policy_path, home, "apps",
        before='[app_categories]\n"code" = "ide"\n',
        after='[app_categories]\n"code" = "ide"\n"slack" = "chat"\n',
        narrower="# no application named by category\n",
        says="1 application(s) newly named by category", shows="slack as chat",
    )  # fmt: skip


def test_fewer_required_approvals_is_material(home: Path, policy_path: Path) -> None:
    keys = (STEWARD_A, STEWARD_B, STEWARD_C)
    _widening_suspends_then_regrant_covers(
        policy_path, home, "keyboard",
        before=_stewards(2, *keys), after=_stewards(1, *keys), narrower=_stewards(3, *keys),
        says="steward approvals per batch 2 -> 1", shows="Data steward approvals needed per batch: 1",
    )  # fmt: skip


def test_a_changed_steward_set_is_material(home: Path, policy_path: Path) -> None:
    _widening_suspends_then_regrant_covers(
        policy_path, home, "keyboard",
        before=_stewards(1, STEWARD_A, STEWARD_B), after=_stewards(1, STEWARD_A, STEWARD_C),
        # The same keys under other names are the same stewards.
        narrower="[stewards]\napprovals_required = 1\n[stewards.keys]\n"
        f'alice = "{STEWARD_B}"\nbob = "{STEWARD_A}"\n',
        says="the set of data stewards who approve batches changed", shows="data stewards' keys, SHA-256",
    )  # fmt: skip


def test_other_categories_ignore_app_categories(home: Path, policy_path: Path) -> None:
    """Only `apps` records categories of applications, so only its grant covers them."""
    policy_path.write_text("# the defaults\n")
    assert run("consent", "grant", "keyboard", "--yes").exit_code == 0
    policy_path.write_text('[app_categories]\n"slack" = "chat"\n')
    assert _state("keyboard")["state"] == "granted"
