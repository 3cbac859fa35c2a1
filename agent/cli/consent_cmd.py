"""Employee consent commands: ``consent show|grant|revoke``, ``pause`` and ``resume``.

Granting shows the notice and asks; revoking is the same single command in reverse and returns only
once a running agent has confirmed it stopped (or no agent runs).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli import common
from agent.cli.agent_link import tell_agent
from protocol.categories import Category
from protocol.timeutil import iso_seconds, utc_now
from vault import consent_ops

if TYPE_CHECKING:
    from vault.policy import MachinePolicy
    from vault.vault import Vault


@click.group()
def consent() -> None:
    """Show, grant or revoke consent, one category at a time.

    Categories: keyboard, mouse, apps, files. All are off until you grant them.
    """


@consent.command("show")
@common.json_option
def show(as_json: bool) -> None:
    """Show each category's state, since when, and the notice version."""
    policy = common.policy_or_defaults()
    lay = common.layout()
    if not lay.vault_db.exists():
        rows = [
            {
                "category": c.value,
                "state": "not_granted" if policy.allows(c) else "forbidden",
                "since": None,
                "receipt_id": None,
                "notice_version": consent_ops.load_notice(c).version,
                "reason": None,
            }
            for c in Category
        ]
    else:
        with common.open_vault() as vault:
            snapshot = vault.consent(policy)
        rows = [
            {
                "category": c.value,
                "state": s.state,
                "since": iso_seconds(s.since) if s.since else None,
                "receipt_id": s.receipt_id,
                "notice_version": s.current_notice_version,
                "reason": s.reason,
            }
            for c, s in snapshot.categories.items()
        ]
    if as_json:
        common.emit_json(rows)
        return
    from agent.words import local_time
    from protocol.timeutil import parse_iso

    click.echo(f"{'CATEGORY':<10} {'STATE':<12} {'SINCE (YOUR TIME)':<24} NOTICE")
    for row in rows:
        since = local_time(parse_iso(str(row["since"])).timestamp()) if row["since"] else "-"
        click.echo(f"{row['category']:<10} {row['state']:<12} {since:<24} v{row['notice_version']}")
        if row["reason"]:
            click.echo(f"           {row['reason']}")
    click.echo("\nGrant: consentry consent grant CATEGORY    Withdraw: consentry consent revoke CATEGORY")


@consent.command("grant")
@click.argument("categories", nargs=-1, required=True, type=common.CategoryType())
@click.option(
    "--yes", is_flag=True, help="Grant without the interactive question (still recorded as your explicit act)."
)
@click.option(
    "--folder",
    "folders",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="For 'files': a folder whose activity may be counted (repeatable). Names are never stored.",
)
def grant(categories: tuple[Category, ...], yes: bool, folders: tuple[Path, ...]) -> None:
    """Grant consent for CATEGORIES after reading each notice.

    Each notice says what is kept, what is never kept, the retention, who can see it and
    how to withdraw. Nothing is captured for a category before this.
    """
    policy = common.policy()
    if Category.FILES in categories and not folders:
        raise click.UsageError("granting 'files' needs at least one --folder to watch")
    if folders and Category.FILES not in categories:
        raise click.UsageError("--folder only applies when granting 'files'")
    for category in categories:
        if not policy.allows(category):
            raise click.ClickException(
                f"the machine policy does not offer '{category.value}' on this computer; nothing was granted"
            )
    granted: list[str] = []
    # Exactly what watched_folders.json will list, so the receipt's scope matches what the agent reads.
    chosen = tuple(dict.fromkeys(Path(f).expanduser().resolve() for f in folders))
    with common.open_vault(create=True) as vault:
        snapshot = vault.consent(policy)
        for category in dict.fromkeys(categories):
            files = category is Category.FILES
            state = snapshot.categories[category]
            if state.state == "granted" and not files:  # files: a new folder list is a new grant
                click.echo(f"{category.value}: already granted (receipt {state.receipt_id}); nothing changed.")
                continue
            if state.state == "suspended" and state.changes:
                click.echo(
                    f"The terms for '{category.value}' changed since you granted it: {'; '.join(state.changes)}."
                )
                click.echo(
                    "Your grant does not cover them; nothing is captured unless you agree to the notice below.\n"
                )
            _, text = consent_ops.notice_shown(category, policy)
            _echo_notice(category, policy, text)
            if files:
                click.echo(f"Folders you are choosing: {len(chosen)} (their names never leave this computer).")
            if not yes and not common.confirm(
                f"Grant consent for '{category.value}'?", nothing_done=f"nothing was granted for {category.value}"
            ):
                click.echo(f"Not granted: {category.value}.")
                continue
            if files:
                from agent.watched_folders import write_watched_folders

                # Written first: if the grant below fails, the list no longer matches the last receipt
                # and the agent stops files capture (fail closed) instead of watching unconsented folders.
                chosen = write_watched_folders(vault.layout, list(chosen)).folders
            receipt, created = consent_ops.grant(
                vault,
                policy,
                category,
                method="cli",
                confirmation="yes-flag" if yes else "interactive-prompt",
                now=utc_now(),
                folders=chosen if files else None,
            )
            state_text = "granted" if created else "already granted"
            scope = f" for {common.counted(len(chosen), 'folder')}" if files else ""
            click.echo(f"{category.value}: {state_text}{scope} (receipt {receipt.receipt_id}).")
            granted.append(category.value)
    if granted:
        tell_agent(common.layout(), must_confirm=False)


def _echo_notice(category: Category, policy: MachinePolicy, text: str) -> None:
    """The notice in plain sections, then the exact text the receipt hashes (what the employee agrees to)."""
    from vault.notice_words import sections_as_text

    click.echo(sections_as_text(consent_ops.notice_sections(category, policy)))
    click.echo("THE EXACT TEXT YOU AGREE TO (your consent receipt records its SHA-256 fingerprint):")
    click.echo(text)


@consent.command("revoke")
@click.argument("categories", nargs=-1, required=True, type=common.CategoryType())
@click.option(
    "--erase",
    is_flag=True,
    help="Also destroy what was collected for these categories here, and ask the "
    "store to erase everything it holds under your pseudonym.",
)
def revoke(categories: tuple[Category, ...], erase: bool) -> None:
    """Withdraw consent for CATEGORIES. Capture stops at once.

    Returns only after a running agent confirmed it stopped those sources and dropped
    what it had not yet written. With --erase, the collected data is crypto-shredded too.
    """
    lay = common.layout()
    if not lay.vault_db.exists():
        click.echo("Nothing was ever granted on this computer; there is nothing to withdraw.")
        return
    policy = common.policy_or_defaults()
    now = utc_now()
    with common.open_vault() as vault:
        before = vault.consent(policy).categories
        withdrawn = consent_ops.revoke(vault, policy, list(dict.fromkeys(categories)), method="cli", now=now)
        for category in dict.fromkeys(categories):
            if category in withdrawn:
                click.echo(f"{category.value}: withdrawn.")
            elif before[category].state == "revoked":
                click.echo(f"{category.value}: already withdrawn; nothing changed.")
            elif before[category].state == "forbidden":
                click.echo(f"{category.value}: not offered on this computer, so never captured; nothing changed.")
            else:
                click.echo(f"{category.value}: was never granted; nothing changed.")
        # Erase before asking the agent: the vault already refuses anything of a withdrawn grant, so
        # an agent that cannot be reached must not keep the erasure from happening.
        if erase:
            from vault.shredding import erase_categories

            keys = erase_categories(vault, list(categories), now=utc_now(), revoked_too=False)
            click.echo(
                f"Erased: {common.counted(len(keys), 'data key')} destroyed; that data can no longer be read by anyone."
            )
            from agent.shipping import request_store_erasure

            line = request_store_erasure(vault, policy, "revoke:" + ",".join(c.value for c in categories), utc_now())
            if line:
                click.echo(line)
        if withdrawn and not lay.control_socket.exists():  # a running agent shows the store every change itself
            _show_store(vault, policy)
    if withdrawn or erase:  # nothing changed: no agent to tell, and no confirmation to claim
        tell_agent(lay, must_confirm=True)


def _show_store(vault: Vault, policy: MachinePolicy) -> None:
    """Let the store witness the withdrawal now, so an older copy of this vault put back cannot hide it."""
    from agent.ledger_witness import ask_store

    verdict = ask_store(vault, policy, utc_now())
    if verdict.state == "confirmed":
        click.echo(
            "The store has witnessed this withdrawal: an older copy of your vault put back later cannot undo it."
        )
    elif verdict.state != "not-configured":
        click.echo(
            f"The store could not witness this withdrawal yet; the agent tells it when it runs. ({verdict.state})"
        )


@click.command()
@click.option(
    "--for",
    "duration",
    type=common.DurationType(),
    default=None,
    help="Resume by itself after this long (e.g. 30m, 1h, 2h30m). Default: until you resume.",
)
def pause(duration: timedelta | None) -> None:
    """Pause all capture, for DURATION or until `consentry resume`."""
    now = utc_now()
    until = now + duration if duration else None
    with common.open_vault(create=True) as vault:
        consent_ops.pause(vault, until=until, method="cli", now=now)
    tell_agent(common.layout(), must_confirm=True)
    from agent.words import local_moment

    click.echo(f"Capture paused {'until ' + local_moment(until) if until else 'until you run: consentry resume'}.")


@click.command()
def resume() -> None:
    """Resume capture after a pause (only granted categories are captured)."""
    if not common.layout().vault_db.exists():
        click.echo("Nothing is paused.")
        return
    with common.open_vault() as vault:
        resumed = consent_ops.resume(vault, common.policy_or_defaults(), reason="employee", now=utc_now())
    tell_agent(common.layout(), must_confirm=False)
    click.echo("Capture resumed." if resumed else "Nothing was paused.")
