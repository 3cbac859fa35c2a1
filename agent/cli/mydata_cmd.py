"""``consentry mydata`` (see everything, decrypted) and ``consentry erase`` (destroy it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from agent.cli import common
from agent.cli.agent_link import tell_agent
from agent.settings import read_folders
from protocol.categories import ALL_CATEGORIES, Category
from protocol.timeutil import iso, utc_display, utc_now
from vault.paths import Layout


def _when(ts: int) -> str:
    return utc_display(ts, seconds=True)


def _summary(record: dict[str, Any]) -> str:
    if record.get("sparse"):  # protocol.windows.KEYBOARD_MIN_PRESSES; not imported: it would load pydantic
        return "the keyboard was used, too few presses to keep any count (sparse window: under 32 presses)"
    data = {k: v for k, v in record.items() if k not in ("start", "end", "receipt_id", "category")}
    parts = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v) or "-"
        elif isinstance(value, list):
            value = (
                "; ".join(
                    " ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item)
                    for item in value
                )
                or "-"
            )
        parts.append(f"{key}: {value}")
    return " | ".join(parts)


@click.command()
@click.option("--category", type=common.CategoryType(), default=None, help="Only this category.")
@click.option(
    "--export",
    "export_to",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write all of it, decrypted, into a new plain SQLite file (0600; never overwrites).",
)
@common.json_option
def mydata(category: Category | None, export_to: Path | None, as_json: bool) -> None:
    """Show everything stored about you on this computer, decrypted.

    This is the only command that prints collected data, and only to you. It also lists
    your consent receipts and the folders you chose for 'files'. With --export FILE.db it
    writes your records (one table per category), consent receipts and ledger into a plain
    SQLite file any SQLite tool can read.
    """
    lay = common.layout()
    if export_to is not None:
        _export(lay, export_to, as_json)
        return
    if not lay.vault_db.exists():
        if as_json:
            common.emit_json({"subject": None, "subjects": [], "receipts": [], "records": [], "watched_folders": []})
        else:
            click.echo("Nothing has been collected about you on this computer.")
        return
    with common.open_vault() as vault:
        records = vault.read_records_as_stored(category.value if category else None)
        receipts = [
            span.receipt.to_json() | {"ended_at": iso(span.ended_at) if span.ended_at else None}
            for span in vault.receipt_spans().values()
        ]
        subject = vault.subject
        from vault.subjects import periods

        # One pseudonym per policy period; the store cannot link them, only this vault can.
        used: list[dict[str, Any]] = [
            {"subject": p.subject, "from": _when(p.period_start), "to": _when(p.period_end), "erased": p.retired}
            for p in periods(vault)
            if p.period_end > p.period_start
        ]
    folders = _watched_folders(lay)
    if as_json:
        common.emit_json(
            {
                "subject": subject,
                "subjects": used,
                "receipts": receipts,
                "records": records,
                "watched_folders": folders,
            }
        )
        return
    if used:
        click.echo("Your pseudonyms, one per policy period (only this computer can link them to you or each other):")
        for entry in used:
            note = "  (erased at the store; replaced)" if entry["erased"] else ""
            click.echo(f"  {entry['subject']}  {entry['from'][:10]} until {entry['to'][:10]}{note}")
    else:
        click.echo(f"Your pseudonym: {subject} (only this computer can link it to you; a new one each policy period)")
    click.echo(f"Consent receipts: {len(receipts)}    Watched folders (files): {', '.join(folders) or 'none'}")
    if not records:
        click.echo("No records are stored.")
        return
    for cat in ALL_CATEGORIES:
        rows = [r for r in records if r["category"] == cat.value]
        if not rows:
            continue
        click.echo(f"\n== {cat.value}: {common.counted(len(rows), 'window')}")
        for record in rows:
            click.echo(f"{_when(record['start'])}–{_when(record['end'])[11:]}  {_summary(record)}")


def _watched_folders(lay: Layout) -> list[str]:
    """The folders the employee chose for ``files``, or why the list cannot be read."""
    folders, problem = read_folders(lay)
    return [f"(unreadable: {problem})"] if problem else [str(p) for p in folders]


def _export(lay: Layout, path: Path, as_json: bool) -> None:
    from agent.mydata_export import export_my_data

    if not lay.vault_db.exists():
        raise click.ClickException("nothing has been collected about you on this computer; there is nothing to export")
    if path.exists() or path.is_symlink():
        raise click.ClickException(f"{path} already exists; choose a new file name (it is never overwritten)")
    if not path.parent.is_dir():
        raise click.ClickException(f"the folder {path.parent} does not exist; create it or choose another file")
    with common.open_vault() as vault:
        summary = export_my_data(vault, path)
    if as_json:
        common.emit_json({"file": str(summary.path), "rows": summary.rows, "plaintext": True})
        return
    click.echo(f"Exported to {summary.path} (owner-only, 0600):")
    for table, count in summary.rows.items():
        click.echo(f"  {table}: {common.counted(count, 'row')}")
    click.echo(
        "Warning: this file is NOT encrypted. Anyone who can read it sees your data; delete it when done.", err=True
    )


@click.command()
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Everything: every category and day. Also withdraws every "
    "grant and asks the store to erase what it holds under your pseudonym.",
)
@click.option(
    "--category", "categories", multiple=True, type=common.CategoryType(), help="Only this category (repeatable)."
)
@click.option("--from", "first_day", default=None, metavar="YYYY-MM-DD", help="First UTC day of a period to erase.")
@click.option("--to", "last_day", default=None, metavar="YYYY-MM-DD", help="Last UTC day of a period to erase.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="With --all: delete the vault files even if the vault cannot be opened.")
def erase(
    everything: bool,
    categories: tuple[Category, ...],
    first_day: str | None,
    last_day: str | None,
    yes: bool,
    force: bool,
) -> None:
    """Erase collected data by destroying its keys (crypto-shredding).

    Choose --all, one or more --category, or a period with --from/--to. The erasure is
    recorded in the consent ledger.
    """
    chosen = sum([everything, bool(categories), bool(first_day or last_day)])
    if chosen != 1:
        raise click.UsageError("choose exactly one of --all, --category, or --from/--to")
    if force and not everything:
        raise click.UsageError("--force only goes with --all")
    if (first_day or last_day) and not (first_day and last_day):
        raise click.UsageError("a period needs both --from and --to")
    for day in (first_day, last_day):
        if day:
            try:
                datetime.strptime(day, "%Y-%m-%d")
            except ValueError:
                raise click.UsageError(f"{day!r} is not a day; use YYYY-MM-DD") from None
    lay = common.layout()
    if not lay.vault_db.exists():
        click.echo("There is no vault on this computer; nothing to erase.")
        return
    what = (
        "everything collected about you"
        if everything
        else (
            "all " + ", ".join(c.value for c in categories) + " data"
            if categories
            else f"data from {first_day} to {last_day}"
        )
    )
    if not yes and not common.confirm(f"Erase {what}? This cannot be undone.", nothing_done="nothing was erased"):
        raise click.ClickException("nothing was erased")
    from agent.erasure import erase as erase_data

    done = erase_data(
        lay,
        now=utc_now(),
        everything=everything,
        categories=categories,
        period=(first_day, last_day) if first_day and last_day else None,
        force=force,
        policy=common.policy_or_defaults,
    )
    if done.files_deleted:
        click.echo("The vault could not be opened, so its files and key were deleted (--force). Nothing remains.")
        return
    tell_agent(lay, must_confirm=everything)
    click.echo(f"Erased {what}: {common.counted(done.keys_destroyed, 'data key')} destroyed.")
    if everything:
        click.echo("Every grant is withdrawn as well; nothing more will be collected.")
        click.echo("The vault key was replaced and the old one destroyed: earlier copies of the vault cannot be read.")
    if done.store_note:
        click.echo(done.store_note)
