"""``consentry enroll``: register this computer's device key with the on-prem store (IT, once)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli import common
from vault.timeutil import utc_now


@click.command()
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="File holding the one-time enrollment token from IT (consentry store token).",
)
def enroll(token_file: Path) -> None:
    """Enroll this computer with the store named in the machine policy.

    The token is used once; the store's keys must match the policy or nothing is enrolled.
    The token is never printed or logged.
    """
    from agent.shipping import enroll as run_enroll

    token = token_file.read_text(encoding="utf-8").strip()
    if not token:
        raise click.UsageError("the token file is empty")
    with common.open_vault(create=True) as vault:
        kid = run_enroll(vault, common.policy(), token, utc_now())
    click.echo(f"Enrolled: this computer's device key {kid} is registered with the store.")
