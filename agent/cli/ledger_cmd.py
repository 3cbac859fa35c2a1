"""``consentry ledger show|verify|accept-rollback``: the consent ledger, readable and checkable by the employee."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from agent.cli import common
from protocol.timeutil import utc_now

if TYPE_CHECKING:
    from vault.vault import Vault


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
        common.emit_json([e._asdict() for e in entries])
        return
    from agent.words import local_time
    from protocol.timeutil import parse_iso

    for entry in entries:
        detail = entry.body.get("category") or ",".join(entry.body.get("categories", []) or []) or ""
        when = local_time(parse_iso(entry.at).timestamp(), seconds=True)
        click.echo(f"{entry.seq:>5}  {when:<23}  {entry.kind:<20} {detail}")


@ledger.command("verify")
@common.json_option
def verify(as_json: bool) -> None:
    """Recompute the hash chain, check signed checkpoints and the signed head; exit 1 on any problem.

    The signed head, kept outside the vault file, catches a ledger whose last entries were deleted or
    an old copy of the vault put back.
    """
    with common.open_vault() as vault:
        report = vault.ledger.verify(vault.device_key.public_bytes)
        head = vault.ledger_head_state()
    if as_json:
        common.emit_json({**report._asdict(), "head": {"status": head.status, "ok": head.ok, "message": head.message}})
    elif report.ok and head.lagging:
        click.echo(f"Ledger OK: {report.entries} entries, head {report.head_hash}; {head.explain()}")
    elif report.ok and head.ok:
        entries = common.counted(report.entries, "entry", "entries")
        click.echo(f"Ledger OK: {entries}, head {report.head_hash}, matches its signed head")
    if not report.ok:
        raise click.ClickException(
            f"ledger broken at entry {report.first_broken_seq}: {report.reason}. "
            "The vault was changed outside Consentry; keep a copy and tell your IT security contact."
        )
    if not head.ok:
        raise click.ClickException(
            f"ledger rolled back: {head.message}. The vault was changed outside Consentry; keep a copy and "
            "tell your IT security contact. Capture stays stopped. To go on: consentry ledger accept-rollback "
            "(records the rollback in the ledger, withdraws every grant and erases what was collected here; "
            "you can then grant again)."
        )


@ledger.command("accept-rollback")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def accept_rollback(yes: bool) -> None:
    """After a detected rollback: record it, withdraw every grant and erase the data kept here.

    The lost entries may have withdrawn consent or erased data, so nothing collected or granted before
    is trusted again. The ledger keeps everything, plus an entry naming the lost head; grant again
    afterwards if you want to.
    """
    from vault.ledger_rollback import accept_rollback as accept

    with common.open_vault() as vault:
        state = vault.ledger_head_state()
        witnessed_later = False
        if state.ok:
            witnessed_later = _store_saw_later(vault)
            if not witnessed_later:
                click.echo("The consent ledger matches its signed head; there is nothing to accept.")
                return
            click.echo("Problem: the store has seen a later state of your consent ledger than this computer holds.")
        else:
            click.echo(f"Problem: {state.message}.")
        if not yes and not common.confirm(
            "Record the rollback, withdraw every grant and erase everything collected here?",
            nothing_done="nothing was changed; capture stays stopped",
        ):
            raise click.ClickException("nothing was changed; capture stays stopped")
        done = accept(vault, utc_now(), witnessed_later=witnessed_later)
    click.echo(
        f"Rollback recorded as ledger entry {done.seq}; every grant was withdrawn and "
        f"{common.counted(done.erased_keys, 'data key')} destroyed. Grant again with: consentry consent grant CATEGORY"
    )
    if witnessed_later:
        click.echo(
            "The store keeps its record of the later ledger: from now on it can no longer confirm this one, and "
            "batches from this computer are refused until IT resolves it at the store."
        )


def _store_saw_later(vault: Vault) -> bool:
    """Whether the store (if one is configured) refuses this ledger as older than one it witnessed."""
    from agent.ledger_witness import ask_store

    verdict = ask_store(vault, common.policy_or_defaults(), utc_now())
    if verdict.state == "unreachable":
        click.echo(f"Note: the store could not be asked ({verdict.message}).")
    return verdict.state == "contradicted"
