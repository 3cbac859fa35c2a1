"""Telling a running agent that consent changed, and waiting for it to confirm."""

from __future__ import annotations

import click

from vault.paths import Layout

CONFIRM_TIMEOUT_SECONDS = 10.0


def tell_agent(layout: Layout, *, must_confirm: bool) -> None:
    """Ask a running agent to re-read consent now.

    With ``must_confirm`` (revoke, pause) the command fails unless the agent confirms it stopped,
    or no agent runs. The ledger already holds the change either way, and the agent also notices it
    by itself within a second.
    """
    from agent.control import notify_consent_changed
    from agent.errors import ControlError

    try:
        confirmed = notify_consent_changed(layout, timeout=CONFIRM_TIMEOUT_SECONDS)
    except (ControlError, OSError) as exc:  # an agent is there but did not confirm: say so, never hang
        if must_confirm:
            raise click.ClickException(
                f"the change is recorded, but the running agent could not be reached ({type(exc).__name__}). "
                "It re-reads consent every second; check with: consentry status"
            ) from None
        return
    if confirmed:
        click.echo("The running agent confirmed the change.")
