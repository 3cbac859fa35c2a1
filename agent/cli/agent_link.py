"""Telling a running agent that consent changed, and waiting for it to confirm."""

from __future__ import annotations

import click

from vault.paths import Layout

CONFIRM_TIMEOUT_SECONDS = 10.0


def ask_agent(layout: Layout) -> tuple[bool, str | None]:
    """Ask a running agent to re-read consent now: (confirmed, why not). Used by the CLI and the tray.

    ``(True, None)``: the agent confirmed; ``(False, None)``: no agent runs; ``(False, message)``: an
    agent is there but did not confirm (the ledger holds the change anyway, and the agent also
    notices it by itself within a second).
    """
    from agent.control import notify_consent_changed
    from agent.errors import ControlError

    try:
        return notify_consent_changed(layout, timeout=CONFIRM_TIMEOUT_SECONDS), None
    except (ControlError, OSError) as exc:  # an agent is there but did not confirm: say so, never hang
        return False, (
            f"the change is recorded, but the running agent could not be reached ({type(exc).__name__}). "
            "It re-reads consent every second; check with: consentry status"
        )


def tell_agent(layout: Layout, *, must_confirm: bool) -> None:
    """Ask a running agent to re-read consent now.

    With ``must_confirm`` (revoke, pause) the command fails unless the agent confirms it stopped,
    or no agent runs.
    """
    confirmed, problem = ask_agent(layout)
    if problem is not None:
        if must_confirm:
            raise click.ClickException(problem)
        return
    if confirmed:
        click.echo("The running agent confirmed the change.")
