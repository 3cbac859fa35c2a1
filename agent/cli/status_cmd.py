"""``consentry status``: per category, whether it is captured right now, and why or why not."""

from __future__ import annotations

import click

from agent.cli import common
from agent.status_report import collect_status


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
