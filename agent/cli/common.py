"""What every CLI command needs: the home, the policy, an open vault, JSON output, durations, questions."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from protocol.errors import PolicyError
from vault.paths import Layout, default_layout, default_policy_path
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def layout() -> Layout:
    return default_layout()


def policy_path() -> Path:
    return default_policy_path()


def policy() -> MachinePolicy:
    """The machine policy; an invalid one is an error with the file, key and fix."""
    try:
        return load_policy(policy_path())
    except PolicyError as exc:
        raise click.ClickException(f"{exc}\nAsk IT to fix the policy; capture stays stopped until then.") from None


def cached_policy() -> MachinePolicy:
    """The policy for commands that only show or withdraw: validated once per policy file content.

    Never for a grant or for capture (``policy()``): the cache is in the employee's own home.
    """
    lay = layout()
    # Looking never creates the employee's Consentry home: no home yet, no cache.
    return load_policy(policy_path(), cache=lay.policy_cache if lay.home.is_dir() else None)


def policy_or_defaults() -> MachinePolicy:
    """For withdrawing or looking (revoke, resume, erase, show): an invalid policy never blocks them.

    The embedded defaults are used instead; they can only make a withdrawal wider, never a grant.
    """
    try:
        return cached_policy()
    except PolicyError as exc:
        click.echo(f"warning: {exc}\n(capture is stopped until IT fixes it; this command goes ahead)", err=True)
        return MachinePolicy()


def open_vault(*, create: bool = False) -> Vault:
    lay = layout()
    if not create and not Vault.exists(lay):
        raise click.ClickException(
            f"there is no Consentry vault in {lay.home} yet. Nothing has been collected. "
            "Start with: consentry consent show"
        )
    return Vault.open(lay, create=create)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 entry``, ``3 entries``, ``0 batches``: a count as a person writes it."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def confirm(question: str, *, nothing_done: str) -> bool:
    """Ask ``question`` (default no). Without an answer (no terminal, end of input, Ctrl-C) the
    command ends with ``nothing_done`` and how to confirm on the command line, never a bare "Aborted!".
    """
    try:
        return click.confirm(question, default=False)
    except click.Abort:
        click.echo("", err=True)  # end the question's line
        raise click.ClickException(
            f"no answer was given (is this a terminal?); {nothing_done}. "
            "Run it in a terminal to answer, or add --yes to confirm on the command line."
        ) from None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h30m``, ``2d``: a positive duration."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise click.BadParameter(f"{text!r} is not a duration; use forms like 30m, 1h, 1h30m, 2d")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise click.BadParameter("the duration must be longer than zero")
    return value


class DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


class CategoryType(click.ParamType):
    name = "CATEGORY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from protocol.categories import parse_category

        try:
            return parse_category(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
