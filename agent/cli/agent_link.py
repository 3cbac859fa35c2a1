"""Telling a running agent that consent changed, and waiting for it to confirm."""

from __future__ import annotations

import click

from agent.consent_signal import ask_agent
from vault.paths import Layout


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
