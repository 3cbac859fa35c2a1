"""``consentry steward review``: the review page on the steward's own machine, served on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from admin.access import (
    key_file_option,
    load_signer,
    machine_store,
    resolve_store_url,
    shown_manifest_digest,
    store_tls_ca,
    store_url_option,
)

LINK_FILE = "review.json"
OPENER_FILE = "open-review.html"
REOPEN = "Open the file steward/open-review.html in your Consentry folder again, or run: consentry steward review"


def _log_key(log_key: str | None) -> bytes | None:
    """The store's tree-head key: --log-key, else the machine policy's store.log_key, else none (shown as unpinned)."""
    from protocol.fields import b64decode

    if log_key is None:
        try:
            section = machine_store("")
        except click.ClickException:  # a bad policy: the page shows the log as unpinned
            return None
        log_key = section.log_key if section else None
    if log_key is None:
        return None
    try:
        return bytes(b64decode(log_key))
    except ValueError:
        raise click.BadParameter("not a base64 Ed25519 public key", param_hint="--log-key") from None


@click.command("review")
@key_file_option
@store_url_option
@click.option("--log-key", help="The store's Ed25519 log key, base64 (default: the machine policy's store.log_key).")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port on 127.0.0.1 (default: any free one).")
@click.option(
    "--no-browser",
    is_flag=True,
    help="Do not open a browser; print the address of a file, readable only by you, that opens the page.",
)
def review(key_file: Path | None, store_url: str | None, log_key: str | None, port: int, no_browser: bool) -> None:
    """Open the review page: the queue, each manifest with its privacy checks and consent basis,
    approve or reject signed on this machine, and the store's audit-log tree head.

    The page runs on 127.0.0.1 until Ctrl-C; your private key never leaves this machine.
    """
    from admin.review_page import StewardPage
    from kit.page_link import remove_page_link, write_page_link
    from kit.store_client import StoreClient
    from kit.web.peer import PeerCheckUnavailable
    from kit.web.server import PageServer
    from vault.paths import default_home

    signer = load_signer(key_file)
    url = resolve_store_url(store_url)
    pinned = _log_key(log_key)

    tls_ca = store_tls_ca(url)

    def client() -> StoreClient:
        return StoreClient(url, signer=signer, role="steward", log_public_key=pinned, tls_ca=tls_ca)

    try:
        server = PageServer(StewardPage(client, signer, shown_manifest_digest), port=port, reopen=REOPEN)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); try another --port") from None
    except PeerCheckUnavailable as exc:  # no page rather than one another local user could sign through
        raise click.ClickException(f"{exc}. Use: consentry steward queue / show / approve / reject") from None
    link = default_home() / "steward" / LINK_FILE
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with server:
            write_page_link(link, url=server.url, token=server.token)
            click.echo(f"Steward review page on {server.url} (Ctrl-C to stop).")
            if no_browser or not _open(link.parent, server.url, server.token):
                click.echo(
                    f"Open it in your browser with: {_opener(link.parent, server.url, server.token)}\n"
                    "(a file only your account can read; it holds the page's session key, so do not share it)"
                )
            stop.wait()
    finally:
        remove_page_link(link)
        (link.parent / OPENER_FILE).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Review page stopped.")


def _with_token(url: str, token: str) -> str:
    from urllib.parse import quote

    return f"{url}?token={quote(token, safe='')}"


def _opener(folder: Path, url: str, token: str) -> str:
    """The ``file://`` address of the 0600 forwarder (in the 0700 steward folder) that opens the page."""
    from kit.page_link import write_opener

    return write_opener(folder / OPENER_FILE, _with_token(url, token))


def _open(folder: Path, url: str, token: str) -> bool:
    """Open the page through a 0600 forwarder file, so the session key is never on a command line."""
    from kit.page_link import open_in_browser

    if open_in_browser(folder / OPENER_FILE, _with_token(url, token)):
        return True
    click.echo("No browser could be started here.")
    return False
