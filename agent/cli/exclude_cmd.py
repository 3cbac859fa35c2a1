"""``consentry exclude``: the employee's own list of applications during which nothing is captured."""

from __future__ import annotations

import click

from agent.cli import common
from agent.cli.agent_link import tell_agent
from protocol.timeutil import utc_now


@click.group()
def exclude() -> None:
    """Applications during whose focus nothing at all is captured.

    The machine policy's list (password managers, banking, HR portals) always applies; this is
    your own addition to it. Names are application classes (WM_CLASS on Linux), e.g. 'firefox'.
    """


def _save(apps: list[str]) -> None:
    from agent.excluded_apps import write_excluded_apps

    lay = common.layout()
    saved = write_excluded_apps(lay, apps)
    if lay.vault_db.exists():
        with common.open_vault() as vault, vault.transaction():
            # The count only: which applications someone excludes is itself personal.
            vault.ledger.append("excluded-apps-changed", {"count": len(saved.apps)}, utc_now())
    tell_agent(lay, must_confirm=True)


def _current() -> list[str]:
    from agent.excluded_apps import read_excluded_apps

    try:
        return list(read_excluded_apps(common.layout()).apps)
    except ValueError as exc:
        raise click.ClickException(f"{exc}; replace it with: consentry exclude clear") from None


@exclude.command("list")
@common.json_option
def list_cmd(as_json: bool) -> None:
    """Show your list and the policy's."""
    mine, policy = _current(), list(common.policy_or_defaults().excluded_apps)
    if as_json:
        common.emit_json({"employee": mine, "policy": policy})
        return
    click.echo(f"Yours:  {', '.join(mine) or '(none)'}")
    click.echo(f"Policy: {', '.join(policy) or '(none)'}")


@exclude.command("add")
@click.argument("apps", nargs=-1, required=True)
def add(apps: tuple[str, ...]) -> None:
    """Add APPS to your list; capture stops whenever one of them has focus."""
    _save(_current() + [a.strip().lower() for a in apps if a.strip()])
    click.echo(f"Excluded: {', '.join(apps)}.")


@exclude.command("remove")
@click.argument("apps", nargs=-1, required=True)
def remove(apps: tuple[str, ...]) -> None:
    """Remove APPS from your list (the policy's list still applies)."""
    drop = {a.strip().lower() for a in apps}
    _save([a for a in _current() if a not in drop])
    click.echo(f"No longer excluded by you: {', '.join(apps)}.")


@exclude.command("clear")
def clear() -> None:
    """Empty your list (the policy's list still applies)."""
    _save([])
    click.echo("Your exclusion list is empty.")
