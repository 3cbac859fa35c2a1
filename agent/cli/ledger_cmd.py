"""``consentry ledger show|verify``: the consent ledger, readable and checkable by the employee."""

from __future__ import annotations

from dataclasses import asdict

import click

from agent.cli import common


@click.group()
def ledger() -> None:
    """Show or verify the tamper-evident consent ledger."""


@ledger.command("show")
@common.json_option
def show(as_json: bool) -> None:
    """List every ledger entry: grants, revocations, pauses, erasures, batches."""
    with common.open_vault() as vault:
        entries = list(vault.ledger.entries())
    if as_json:
        common.emit_json([asdict(e) for e in entries])
        return
    for entry in entries:
        detail = entry.body.get("category") or ",".join(entry.body.get("categories", []) or []) or ""
        click.echo(f"{entry.seq:>5}  {entry.at}  {entry.kind:<20} {detail}")


@ledger.command("verify")
@common.json_option
def verify(as_json: bool) -> None:
    """Recompute the hash chain and check signed checkpoints; exit 1 at the first broken entry."""
    with common.open_vault() as vault:
        report = vault.ledger.verify(vault.device_key.public_bytes)
    if as_json:
        common.emit_json(asdict(report))
    elif report.ok:
        click.echo(f"Ledger OK: {report.entries} entries, head {report.head_hash}")
    if not report.ok:
        raise click.ClickException(
            f"ledger broken at entry {report.first_broken_seq}: {report.reason}. "
            "The vault was changed outside Consentry; keep a copy and tell your IT security contact."
        )
