"""``consentry enroll``: register this computer's device key with the on-prem store (IT, once)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from agent.cli import common
from protocol.timeutil import utc_now

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_MAX_TOKEN_FILE_BYTES = 4096


def read_token(path: Path) -> str:
    """The token in ``path``, checked before anything is sent; errors never quote the file's content."""
    with path.open("rb") as fh:
        data = fh.read(_MAX_TOKEN_FILE_BYTES + 1)
    if len(data) > _MAX_TOKEN_FILE_BYTES:
        raise click.UsageError(f"{path} is too large for a token file; it should hold only the token from IT")
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise click.UsageError(f"{path} is not a text file; it should hold only the token from IT") from None
    if not token:
        raise click.UsageError(f"{path} is empty; put the token from IT (consentry store token) in it")
    if not TOKEN_PATTERN.fullmatch(token):
        raise click.UsageError(
            f"{path} does not hold a token as `consentry store token` prints it (16 to 128 letters, digits, "
            "- and _, nothing else: no quotes or spaces). Nothing was sent."
        )
    return token


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

    token = read_token(token_file)
    with common.open_vault(create=True) as vault:
        kid = run_enroll(vault, common.policy(), token, utc_now())
    click.echo(f"Enrolled: this computer's device key {kid} is registered with the store.")
