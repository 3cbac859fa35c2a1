"""``consentry status``: per category, whether it is captured right now, and why or why not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from agent.cli import common
from agent.settings import check_settings
from protocol.categories import Category
from protocol.errors import PolicyError
from protocol.timeutil import iso_seconds, utc_midnight, utc_now
from vault import outbox
from vault.consent import FOREVER, ConsentSnapshot
from vault.policy import MachinePolicy
from vault.vault import Vault


def _agent_status(timeout: float) -> dict[str, Any] | None:
    lay = common.layout()
    if not lay.control_socket.exists():  # no agent: skip the control protocol (and its pydantic models)
        return None
    from agent.control import query_status
    from agent.errors import ControlError

    try:
        return query_status(lay, timeout=timeout)
    except (ControlError, OSError) as exc:
        # Something holds the socket but does not answer (a frozen or overloaded agent): nothing here
        # says what it captures, so say that, rather than "not running".
        return {"running": False, "unreachable": str(exc) or type(exc).__name__}


def _paused_until(snapshot: ConsentSnapshot, now: datetime) -> str | None:
    if not snapshot.is_paused(now) or snapshot.paused_until is None:
        return None
    return "indefinitely" if snapshot.paused_until == FOREVER else iso_seconds(snapshot.paused_until)


def collect_status(agent_timeout: float = 5.0) -> dict[str, Any]:
    now = utc_now()
    lay = common.layout()
    policy_file = common.policy_path()
    report: dict[str, Any] = {
        "home": str(lay.home),
        "policy_file": str(policy_file),
        "now": iso_seconds(now),
        "warnings": [],
    }
    policy: MachinePolicy | None
    try:
        policy = common.cached_policy()
        report["policy"] = {"state": "ok", "sha256": policy.digest(), "exists": policy_file.exists()}
        report["warnings"] = policy.warnings()
    except PolicyError as exc:
        policy = None
        report["policy"] = {"state": "invalid", "message": str(exc)}
    agent = _agent_status(agent_timeout)
    report["agent"] = agent if agent is not None else {"running": False}
    report.update(paused_until=None, records_today=0, release={"batches": {}, "problems": [], "erasures_pending": 0})
    consent: dict[str, Any] = {c.value: {"consent": "not_granted", "since": None, "reason": None} for c in Category}
    if lay.vault_db.exists():
        with common.open_vault() as vault:
            report["records_today"] = vault.count_windows(since=utc_midnight(now))
            report["release"] = _release_summary(vault)
            # With an invalid policy the employee's own consent is still shown; capture is stopped.
            snapshot = vault.consent(policy or MachinePolicy())
            head = vault.ledger_head_state()
            shown = not head.ok or head.lagging
            report["ledger"] = {"ok": head.ok, "state": head.status, "message": head.explain() if shown else None}
            report["paused_until"] = _paused_until(snapshot, now)
            report["settings_problems"] = check_settings(lay, vault, snapshot)
            for category, state in snapshot.categories.items():
                since = iso_seconds(state.since) if state.since else None
                consent[category.value] = {"consent": state.state, "since": since, "reason": state.reason}
    from agent.fleet_state import status_lines

    report["store_notices"] = status_lines(lay)  # e.g. IT retired this computer (agent.heartbeat)
    if "settings_problems" not in report:
        report["settings_problems"] = check_settings(lay, None, None)
    live = agent.get("categories", {}) if agent else {}
    for name, entry in consent.items():
        if policy is None:
            entry["capture"] = "stopped: the machine policy is invalid"
        elif isinstance(live, dict) and name in live:
            entry["capture"] = live[name]
        else:
            entry["capture"] = "agent not running" if entry["consent"] == "granted" else "off"
    report["categories"] = consent
    return report


def _release_summary(vault: Vault) -> dict[str, Any]:
    """Batches by state, and what the store last said about any that is stuck (from the vault)."""
    counts: dict[str, int] = {}
    problems = []
    for row in outbox.list_batches(vault):
        counts[row.state] = counts.get(row.state, 0) + 1
        if row.last_error and row.state not in ("shipped", "vetoed", "erased"):
            problems.append({"batch_id": row.batch_id, "state": row.state, "error": row.last_error})
    return {"batches": counts, "problems": problems, "erasures_pending": outbox.pending_erasure_count(vault)}


@click.command()
@common.json_option
def status(as_json: bool) -> None:
    """What runs, per category: capturing, paused, not granted, forbidden by policy or unavailable.

    Also the agent's last flush and how many records were stored today.
    """
    report = collect_status()
    if as_json:
        common.emit_json(report)
        return
    agent = report["agent"]
    if agent.get("running", True) and agent.get("pid"):
        click.echo(f"Agent: running (pid {agent['pid']}), last flush {agent.get('last_flush') or 'not yet'}")
    elif agent.get("unreachable"):
        click.echo(f"Agent: NOT ANSWERING ({agent['unreachable']}); what it captures is unknown")
    else:
        click.echo("Agent: not running (start it with: consentry agent run)")
    policy = report["policy"]
    if policy["state"] == "ok":
        click.echo(f"Policy: ok ({'from ' + report['policy_file'] if policy['exists'] else 'embedded defaults'})")
    else:
        click.echo(f"Policy: INVALID, all capture stopped\n  {policy['message']}")
    for warning in report["warnings"]:
        click.echo(f"Policy WARNING: {warning}")
    for notice in report.get("store_notices", []):
        click.echo(notice)
    for problem in report["settings_problems"]:
        click.echo(f"Settings: DAMAGED, capture stopped\n  {problem}")
    ledger = report.get("ledger")
    if ledger and not ledger["ok"]:
        click.echo(f"Ledger: ROLLED BACK, all capture stopped\n  {ledger['message']}")
    elif ledger and ledger["state"] == "lagging":
        click.echo(f"Ledger: SIGNED HEAD BEHIND your last withdrawal, granting refused\n  {ledger['message']}")
    witness = agent.get("ledger_witness") if agent.get("pid") else None
    if isinstance(witness, dict) and witness.get("state") not in (None, "not-configured"):
        when = f" (checked {witness['checked_at']})" if witness.get("checked_at") else ""
        if witness["state"] == "confirmed":
            click.echo(f"Store check: your consent ledger is the latest the store has seen{when}")
        else:
            held = "" if witness["state"] == "accepted" else ", capture held"
            click.echo(f"Store check: {str(witness['state']).upper()}{held}\n  {witness.get('message')}{when}")
    if report["paused_until"]:
        until = report["paused_until"]
        if until != "indefinitely":  # the employee's time with its zone; --json keeps UTC
            from agent.words import local_time
            from protocol.timeutil import parse_iso

            until = local_time(parse_iso(until).timestamp())
        click.echo(f"Paused until {until} (resume with: consentry resume)")
    click.echo(f"\n{'CATEGORY':<10} {'CONSENT':<12} CAPTURE")
    for name, entry in report["categories"].items():
        capture = entry["capture"]
        if isinstance(capture, dict):
            capture = capture.get("state", "?") + (f" ({capture['reason']})" if capture.get("reason") else "")
        elif entry.get("reason"):  # no agent to say why (a suspended grant, say): the ledger does
            capture = f"{capture} ({entry['reason']})"
        click.echo(f"{name:<10} {entry['consent']:<12} {capture}")
    click.echo(f"\nRecords stored today: {report['records_today']}")
    release = report["release"]
    if release["batches"]:
        summary = ", ".join(f"{n} {state}" for state, n in sorted(release["batches"].items()))
        click.echo(f"Batches: {summary} (details: consentry batches)")
    for problem in release["problems"]:
        click.echo(f"  batch {problem['batch_id']} ({problem['state']}): {problem['error']}")
    if release["erasures_pending"]:
        click.echo(f"Erasure requests waiting for the store: {release['erasures_pending']}")
