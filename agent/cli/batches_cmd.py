"""``consentry batches``: what would leave this computer, and the employee's veto and early release."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from agent.cli import common
from agent.words import local_time
from protocol.timeutil import parse_iso, utc_now
from vault import outbox

if TYPE_CHECKING:
    from vault.vault import Vault


@click.group(invoke_without_command=True)
@click.pass_context
def batches(ctx: click.Context) -> None:
    """Preview, veto or release batches before they leave this computer.

    A batch is held for the policy's hold period; during it you can see exactly what
    would leave (batches show ID) and veto it (its data is destroyed) or release it early.
    After the hold, data stewards review its manifest; only approved batches are sent.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


@batches.command("list")
@common.json_option
def list_cmd(as_json: bool) -> None:
    """List batches with their state, period, record counts and any error from the store."""
    if not common.layout().vault_db.exists():
        rows = []
    else:
        with common.open_vault() as vault:
            rows = [b.to_json() for b in outbox.list_batches(vault)]
    if as_json:
        common.emit_json(rows)
        return
    if not rows:
        click.echo("No batches yet.")
        return
    click.echo(f"{'BATCH':<34} {'STATE':<10} {'PERIOD (YOUR TIME)':<42} RECORDS")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in row["record_counts"].items())
        period = f"{local_time(row['period_start'])} – {local_time(row['period_end'])}"
        click.echo(f"{row['batch_id']:<34} {row['state']:<10} {period:<42} {counts}")
        if row["state"] == "held":
            held = local_time(parse_iso(row["hold_until"]).timestamp())
            click.echo(f"{'':<34} held until {held}: veto or release it now if you wish")
        if row["last_error"]:
            click.echo(f"{'':<34} store said: {row['last_error']}")


@batches.command("show")
@click.argument("batch_id")
@common.json_option
def show(batch_id: str, as_json: bool) -> None:
    """Show exactly what batch BATCH_ID would send, record by record, and its privacy checks."""
    from agent.words import record_in_words
    from vault.batches import preview_records
    from vault.receipt_links import receipt_links

    with common.open_vault() as vault:
        info = outbox.get_batch(vault, batch_id)
        records = preview_records(vault, info)
        links = receipt_links(vault, batch_id)
        spans = vault.receipt_spans()
    cited = {r["receipt_id"]: links.get(r["receipt_id"]) for r in records}
    if as_json:
        common.emit_json({"batch": info.to_json(), "records": records, "receipt_links": cited})
        return
    click.echo(
        f"Batch {info.batch_id}: {info.state}, {common.counted(sum(info.record_counts.values()), 'record')}, "
        f"payload sha256 {info.payload_sha256}"
    )
    for check in info.privacy_checks:
        click.echo(f"  [{'pass' if check['passed'] else 'FAIL'}] {check['name']}: {check.get('detail', '')}")
    for record in records:
        click.echo(f"{local_time(record['start'])}  {record['category']:<8}  {record_in_words(record)}")
    if cited:
        click.echo(
            "\nThe batch names your consent grants by an alias for this period, so the store cannot link periods:"
        )
    for alias, own in sorted(cited.items()):
        if own is None:
            click.echo(f"  {alias}: no grant on this computer has this alias")
            continue
        span = spans[own]
        granted = f"{span.receipt.category.value}, granted {local_time(span.granted_at.timestamp())}"
        click.echo(f"  {alias} is your grant {own} ({granted}), as listed by consentry mydata")
    if records:
        click.echo(f"The exact values: consentry batches show {batch_id} --json")
    if not records:
        click.echo("This batch holds no data any more.")


@batches.command("veto")
@click.argument("batch_id")
def veto(batch_id: str) -> None:
    """Veto batch BATCH_ID: it never leaves, and its data is destroyed."""
    from vault.batches import veto as veto_batch

    _decide(veto_batch, batch_id)
    click.echo(f"Batch {batch_id} vetoed; its data was destroyed and it will never leave this computer.")


@batches.command("release")
@click.argument("batch_id")
def release(batch_id: str) -> None:
    """End the hold of batch BATCH_ID early, sending it to steward review at the next sync."""
    from vault.batches import release as release_batch

    _decide(release_batch, batch_id)
    click.echo(f"Batch {batch_id} released for steward review.")


def _decide(decision: Callable[[Vault, str, datetime], object], batch_id: str) -> None:
    """The employee's decision on one held batch (veto or release), recorded now."""
    with common.open_vault() as vault:
        decision(vault, batch_id, utc_now())


@batches.command("seal")
@common.json_option
def seal(as_json: bool) -> None:
    """Seal the records not yet in a batch into a new held batch (the agent also does this daily)."""
    from vault.batches import seal_pending

    with common.open_vault() as vault:
        info = seal_pending(vault, common.policy(), utc_now())
    if as_json:
        common.emit_json(info.to_json() if info else None)
    elif info is None:
        click.echo("Nothing to seal: every stored record is already in a batch.")
    else:
        click.echo(
            f"Sealed batch {info.batch_id}; held until {local_time(parse_iso(info.hold_until).timestamp())}. "
            f"Preview: consentry batches show {info.batch_id}"
        )


@batches.command("sync")
@common.json_option
def sync(as_json: bool) -> None:
    """Talk to the store once: submit due batches, fetch decisions, send approved ones and erasures."""
    from agent.shipping import sync as run_sync

    with common.open_vault() as vault:
        report = run_sync(vault, common.policy(), utc_now())
    if as_json:
        common.emit_json(report.__dict__)
        return
    for name in ("submitted", "approved", "rejected", "shipped", "erasures_sent"):
        values = getattr(report, name)
        if values:
            click.echo(f"{name.replace('_', ' ')}: {', '.join(values)}")
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors:
        raise click.ClickException("some steps failed; they are retried at the next sync (see consentry status)")
