"""The ``consentry`` root command: lazy subcommands and the one place errors become exit codes.

Exit codes: 0 success, 1 an error with a next step (``click.ClickException``), 2 a usage error.
Any other exception becomes a one-line error too (``agent.cli.crash``): no traceback reaches the user.
Subcommands are imported only when invoked, so ``consentry status`` does not pay for the store,
the capture sources or the export code.
"""

from __future__ import annotations

import difflib
import importlib
import io
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from agent.cli import crash
from protocol.errors import ConsentryError, InvalidRecord, VaultCorrupted

# name -> (module, attribute, one-line help shown in `consentry --help` without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "consent": ("agent.cli.consent_cmd", "consent", "Show, grant or revoke consent per category."),
    "status": ("agent.cli.status_cmd", "status", "What is being captured right now, and why or why not."),
    "tray": ("agent.cli.tray_cmd", "tray", "Show Consentry in the system tray (state, revoke, pause)."),
    "pause": ("agent.cli.consent_cmd", "pause", "Pause all capture, for a while or until you resume."),
    "resume": ("agent.cli.consent_cmd", "resume", "Resume capture after a pause."),
    "mydata": ("agent.cli.mydata_cmd", "mydata", "Show everything stored about you, decrypted, on this computer."),
    "page": ("agent.cli.page_cmd", "page", "Open your local page: consent, my data, batches, ledger."),
    "erase": ("agent.cli.mydata_cmd", "erase", "Erase your collected data (crypto-shredding)."),
    "exclude": ("agent.cli.exclude_cmd", "exclude", "Applications during which nothing is captured."),
    "ledger": ("agent.cli.ledger_cmd", "ledger", "Show or verify the tamper-evident consent ledger."),
    "policy": ("agent.cli.policy_cmd", "policy", "Show or validate the machine policy (for IT)."),
    "doctor": ("agent.cli.doctor_cmd", "doctor", "Check the vault, its key, the ledger and the policy."),
    "enroll": ("agent.cli.enroll_cmd", "enroll", "Register this computer with the on-prem store (IT, once)."),
    "agent": ("agent.cli.agent_cmd", "agent", "Run the per-user capture agent."),
    "batches": ("agent.cli.batches_cmd", "batches", "Preview, veto or release batches before they leave."),
    "steward": ("admin.steward_cmd", "steward", "Data stewards: review and approve or reject batches."),
    "store": ("admin.store_cmd", "store", "Run the on-prem store, export datasets, verify its log."),
    "demo": ("agent.cli.demo_cmd", "demo", "Run the whole flow on this machine in a temporary home."),
    "dataset": ("admin.dataset_cmd", "dataset", "Governed dataset releases: request, approve, lineage."),
}


def _hint(exc: ConsentryError) -> str:
    """The message for the employee, with the next step where the error itself has none."""
    if isinstance(exc, InvalidRecord):
        from vault.integrity import INTEGRITY_HINT

        return (
            "stored data failed its integrity check (it was altered, or written under a key this vault no "
            f"longer has); nothing was changed. {INTEGRITY_HINT}"
        )
    if isinstance(exc, VaultCorrupted):
        return f"{exc}. Nothing was changed. Run: consentry doctor, or restore the vault from a backup"
    return str(exc)


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when it is used."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module, attribute, _ = self._lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click suggests from the commands it has loaded; ours load lazily, so suggest from the table.
            name = args[0] if args else ""
            suggestion = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if exc.message == f"No such command {name!r}." and suggestion:
                raise click.UsageError(f"{exc.message} Did you mean {suggestion[0]!r}?", ctx) from None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above: `consentry --help` imports no subcommand.
        rows = [(name, self._lazy[name][2]) for name in sorted(self._lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            _reader_went_away()
        except ConsentryError as exc:
            raise click.ClickException(_hint(exc)) from None
        except sqlite3.OperationalError as exc:
            raise click.ClickException(f"the vault could not be used right now ({exc}); nothing was changed") from None
        except Exception as exc:  # the one boundary: no traceback (and nothing it might quote) reaches the user
            raise click.ClickException(crash.one_line(exc, _log_dir())) from None


def _reader_went_away() -> NoReturn:
    """Whoever read our output stopped reading (``consentry status | head -3``): end quietly, exit 1.

    stdout is pointed at /dev/null first, so the interpreter's last flush cannot fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no real stdout (tests): nothing to redirect
        pass
    sys.exit(1)


def _log_dir() -> Path | None:
    try:
        from vault.paths import default_layout

        return default_layout().log_dir
    except Exception:  # no usable home: the one-line message still goes out
        return None


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="consentry")
def cli() -> None:
    """Consentry: consent-first work telemetry with an encrypted local vault.

    Nothing is captured until you grant a category; withdrawing is one command
    (consentry consent revoke CATEGORY). Your data stays encrypted on this computer and
    leaves it only in batches you can preview and veto, after data stewards approve them.

    Files live in $CONSENTRY_HOME (default: your user data folder); the machine policy is
    read from $CONSENTRY_POLICY (default: /etc/xdg/consentry/policy.toml on Linux).
    """


def main() -> None:
    try:
        cli(prog_name="consentry")
    except BrokenPipeError:  # raised by click's own output (usage, errors)
        _reader_went_away()
    except Exception as exc:  # raised outside a subcommand (argument parsing, output): still one line
        click.echo(f"Error: {crash.one_line(exc, _log_dir())}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
