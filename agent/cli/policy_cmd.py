"""``consentry policy show|validate``: what IT's machine policy says, and whether a file is valid."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli import common
from protocol.errors import PolicyError
from vault.policy import parse_policy


@click.group()
def policy() -> None:
    """Show the machine policy in force, or validate a policy file before deploying it."""


@policy.command("show")
@common.json_option
def show(as_json: bool) -> None:
    """Show the policy in force (the file, or the embedded defaults when there is none)."""
    path = common.policy_path()
    current = common.policy()
    data = current.to_json()
    if as_json:
        common.emit_json({"file": str(path), "exists": path.exists(), "sha256": current.digest(), "policy": data})
        return
    click.echo(f"# {path} ({'in force' if path.exists() else 'absent: embedded defaults'}), sha256 {current.digest()}")
    for key, value in data.items():
        click.echo(f"{key} = {value}")


@policy.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(file: Path) -> None:
    """Check FILE against the policy schema; exit 1 with each problem named."""
    try:
        parsed = parse_policy(file.read_text(encoding="utf-8"), source=str(file))
    except (PolicyError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: valid (sha256 {parsed.digest()})")
