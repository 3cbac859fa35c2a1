"""``consentry mydata`` (see everything, decrypted) and ``consentry erase`` (destroy it).

``mydata`` reads one period at a time (by default the latest day with data, in local time) and streams
what it prints, so it answers as fast and in as little memory for a million records as for ten.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import click

from agent.cli import common
from agent.cli.agent_link import tell_agent
from agent.settings import read_folders
from protocol.categories import Category
from protocol.timeutil import iso_seconds, local_display, utc_display, utc_now
from vault.paths import Layout

PER_PAGE = 100  # records printed per page of the text view


def _when(ts: int) -> str:
    return utc_display(ts, seconds=True)


def _summary(record: dict[str, Any]) -> str:
    """The record in words, every number with its unit (``--json`` gives the raw values)."""
    from agent.words import record_in_words

    return record_in_words(record)


class When(NamedTuple):
    moment: datetime  # aware
    whole_day: bool  # given as a day: as an end, the day counts whole


class LocalMoment(click.ParamType):
    """A day or a moment in the employee's local time (``2026-12-05``, ``2026-12-05 14:30``), or ISO with a zone."""

    name = "when"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> When:
        if isinstance(value, When):
            return value
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a day or a time; use 2026-12-05 or '2026-12-05 14:30'", param, ctx)
        # No zone given: the computer's local time, as everything the employee reads.
        return When(moment if moment.tzinfo else moment.astimezone(), whole_day=len(text) == 10)


def _local_midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day).astimezone().timestamp())


def _period(
    vault: Any, category: str | None, since: When | None, until: When | None, everything: bool
) -> tuple[int | None, int | None, str]:
    """The window starts to show (``start <= s < end``) and how to describe them to the employee."""
    if everything:
        return None, None, "all your records"
    if since is None and until is None:
        newest = vault.newest_record_start(category)
        if newest is None:
            return None, None, "all your records"
        day = datetime.fromtimestamp(newest).date()
        return (
            _local_midnight(day),
            _local_midnight(day + timedelta(days=1)),
            f"the latest day with data, {day.isoformat()} (your local time)",
        )
    start: int | None = int(since.moment.timestamp()) if since else None
    end: int | None
    if until is None:
        end = None
    elif until.whole_day:
        end = _local_midnight(until.moment.date() + timedelta(days=1))
    else:
        end = int(until.moment.timestamp())
    first = local_display(start) if start is not None else "the first record"
    last = local_display(end) if end is not None else "now"
    return start, end, f"from {first} until {last}"


@click.command()
@click.option("--category", type=common.CategoryType(), default=None, help="Only this category.")
@click.option("--from", "since", type=LocalMoment(), default=None, help="Start of the period to show (local time).")
@click.option(
    "--to", "until", type=LocalMoment(), default=None, help="End of the period (local time; a day counts whole)."
)
@click.option("--all", "everything", is_flag=True, help="Every record, however many (streamed).")
@click.option(
    "--page",
    type=click.IntRange(min=1),
    default=None,
    help=f"Page of the period to show, counted from the newest ({PER_PAGE} records a page; text default: 1).",
)
@click.option(
    "--export",
    "export_to",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write all of it, decrypted, into a new plain SQLite file (0600; never overwrites).",
)
@common.json_option
def mydata(
    category: Category | None,
    since: When | None,
    until: When | None,
    everything: bool,
    page: int | None,
    export_to: Path | None,
    as_json: bool,
) -> None:
    """Show what is stored about you on this computer, decrypted.

    This is the only command that prints collected data, and only to you. It also lists
    your consent receipts and the folders you chose for 'files'. By default it shows the
    latest day with data; choose a period with --from/--to, or everything with --all. The
    text view shows 100 records a page (--page 2 for the ones before). With --json the
    records of the period are streamed. With --export FILE.db it writes all your records
    (one table per category), consent receipts and ledger into a plain SQLite file any
    SQLite tool can read.
    """
    if everything and (since or until):
        raise click.UsageError("choose either --all or a period with --from/--to, not both")
    if since and until and until.moment <= since.moment and not until.whole_day:
        raise click.UsageError("--to must be after --from")
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
    cat = category.value if category else None
    with common.open_vault() as vault:
        start, end, described = _period(vault, cat, since, until, everything)
        total = vault.count_windows(cat, start, end)
        receipts = [
            span.receipt.to_json() | {"ended_at": iso_seconds(span.ended_at) if span.ended_at else None}
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
            newest = None if page is None else PER_PAGE
            skip = 0 if page is None else (page - 1) * PER_PAGE
            records = vault.iter_records_as_stored(cat, start=start, end=end, newest=newest, skip_newest=skip)
            head = {
                "subject": subject,
                "subjects": used,
                "receipts": receipts,
                "watched_folders": folders,
                "period": {
                    "from": iso_or_none(start),
                    "to": iso_or_none(end),
                    "records": total,
                    "page": page,
                    "per_page": PER_PAGE if page else None,
                },
            }
            _stream_json(head, records)
            return
        _print_text(vault, cat, start, end, described, total, page or 1, subject, used, receipts, folders)


def iso_or_none(ts: int | None) -> str | None:
    return None if ts is None else iso_seconds(datetime.fromtimestamp(ts).astimezone())


def _stream_json(head: dict[str, Any], records: Iterator[dict[str, Any]]) -> None:
    """One JSON object, written as it is read: ``records`` is never held in memory as a whole."""
    out = sys.stdout
    body = json.dumps(head, indent=2, sort_keys=True, default=str)
    out.write(body[:-2] + ',\n  "records": [')
    first = True
    for record in records:
        out.write(("\n    " if first else ",\n    ") + json.dumps(record, sort_keys=True))
        first = False
    out.write("\n  ]\n}\n" if not first else "]\n}\n")
    out.flush()


def _print_text(
    vault: Any,
    cat: str | None,
    start: int | None,
    end: int | None,
    described: str,
    total: int,
    page: int,
    subject: str,
    used: list[dict[str, Any]],
    receipts: list[dict[str, Any]],
    folders: list[str],
) -> None:
    if used:
        click.echo("Your pseudonyms, one per policy period (only this computer can link them to you or each other):")
        for entry in used:
            note = "  (erased at the store; replaced)" if entry["erased"] else ""
            click.echo(f"  {entry['subject']}  {entry['from'][:10]} until {entry['to'][:10]}{note}")
    else:
        click.echo(f"Your pseudonym: {subject} (only this computer can link it to you; a new one each policy period)")
    click.echo(f"Consent receipts: {len(receipts)}    Watched folders (files): {', '.join(folders) or 'none'}")
    stored = vault.count_windows(cat)
    if not stored:
        click.echo("No records are stored.")
        return
    pages = max(1, -(-total // PER_PAGE))
    click.echo(f"\nShowing {described}: {_records(total)} of {_records(stored)} stored.")
    if total == 0:
        click.echo("Nothing in this period. Choose another with --from/--to, or see everything with --all.")
        return
    if page > pages:
        raise click.UsageError(f"there are only {pages} page(s) in this period")
    shown = list(
        vault.iter_records_as_stored(cat, start=start, end=end, newest=PER_PAGE, skip_newest=(page - 1) * PER_PAGE)
    )
    if pages > 1:
        click.echo(f"Page {page} of {pages} (newest first; older ones: --page {min(page + 1, pages)}).")
    for record in shown:
        click.echo(f"{local_display(record['start'], seconds=True)}  {record['category']:<8}  {_summary(record)}")
    if stored > total:
        click.echo("\nOlder or other records: use --from/--to (e.g. --from 2026-11-01 --to 2026-11-30), or --all.")


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n:,} records"


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
