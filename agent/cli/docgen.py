"""Generate docs/cli.md from the commands' own ``--help``, so the reference cannot drift.

python -m agent.cli.docgen > docs/cli.md
"""

from __future__ import annotations

import click

from agent.cli.main import cli


def _walk(command: click.Command, path: list[str], ctx: click.Context | None) -> list[tuple[list[str], str]]:
    # The command's own context settings (e.g. -h as well as --help), as when a user runs it.
    settings = {"terminal_width": 100, "max_content_width": 100, **command.context_settings}
    sub_ctx = click.Context(command, info_name=path[-1], parent=ctx, **settings)
    out = [(path, command.get_help(sub_ctx))]
    if isinstance(command, click.Group):
        for name in command.list_commands(sub_ctx):
            child = command.get_command(sub_ctx, name)
            if child is not None and not child.hidden:
                out.extend(_walk(child, [*path, name], sub_ctx))
    return out


def render() -> str:
    lines = [
        "# Command-line reference",
        "",
        "Generated from `--help` by `python -m agent.cli.docgen > docs/cli.md`; a test fails when it drifts.",
        "Exit codes: 0 success, 1 error (the message says what to do next), 2 usage error.",
        "",
    ]
    for path, text in _walk(cli, ["consentry"], None):
        lines += [f"## `{' '.join(path)}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    click.echo(render(), nl=False)
