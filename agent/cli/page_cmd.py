"""``consentry page``: open the running agent's local page (consent, my data, batches, ledger) in a browser."""

from __future__ import annotations

import click

from agent.cli import common

PAGES = {
    "consent": "/",
    "mydata": "/mydata",
    "batches": "/batches",
    "ledger": "/ledger",
    **{c: f"/consent/{c}" for c in ("keyboard", "mouse", "apps", "files")},
}


@click.command()
@click.argument("where", type=click.Choice(list(PAGES)), default="consent")
@click.option(
    "--print-url",
    is_flag=True,
    help="Print the page's address with its session key instead of opening a browser (keep it to yourself).",
)
def page(where: str, print_url: bool) -> None:
    """Open your local page: consent (with each notice), my data, batches or the ledger.

    WHERE is a page (consent, mydata, batches, ledger) or a category, to read its notice and grant or
    revoke. The page is served by your running agent on 127.0.0.1 only and opens with a session key
    that only you can read.
    """
    from kit.page_link import page_link

    lay = common.layout()
    url = page_link(lay.page_link, PAGES[where])
    if url is None:
        raise click.ClickException(
            "the agent is not running, so its page is not either. Start it with: consentry agent run"
        )
    if print_url:
        click.echo(url)
        return
    from kit.page_link import OPENER_NAME, browser_named, open_in_browser

    if not open_in_browser(lay.runtime_dir / OPENER_NAME, url):
        named = browser_named()
        which = f"your browser ({named}, from $BROWSER) did not start" if named else "no web browser could be started"
        raise click.ClickException(f"{which}, so the page was not opened. Run: consentry page --print-url")
    click.echo(
        f"Your browser was asked to open your Consentry page ({where}); if it does not appear, run: consentry page --print-url"
    )
