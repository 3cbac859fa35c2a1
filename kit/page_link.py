"""Where a local page is (its loopback address and link token, ``page.json``, 0600), and how to open it.

The agent writes this file when its page server starts and removes it when it stops; the tray and
``consentry`` commands read it to open a page for the employee (``consentry steward review`` keeps
the same file for its page). Like a Jupyter server's runtime file, it is owner-only in the 0700
runtime folder, and the token is never logged or printed. A browser is given the token only inside
a 0600 forwarding file (``open_in_browser``), never on its command line, where ``ps`` shows it to
every user. (The page also refuses every connection from another user's programs, so a token that
leaks anyway opens nothing for them: kit.web.peer.)
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from protocol.atomic import write_atomic

PAGE_LINK_VERSION = 1
OPENER_NAME = "open-page.html"  # the forwarding file, beside page.json


def write_page_link(path: Path, *, url: str, token: str) -> None:
    """Record the running page's base URL (``http://127.0.0.1:PORT/``) and token, owner-only."""
    body = {"v": PAGE_LINK_VERSION, "url": url, "token": token}
    write_atomic(path, json.dumps(body).encode("utf-8"), mode=0o600)


def remove_page_link(path: Path) -> None:
    path.unlink(missing_ok=True)


def page_link(path: Path, page: str = "/") -> str | None:
    """The URL that opens ``page`` with the session token, or ``None`` when no page is running."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("v") != PAGE_LINK_VERSION:
        return None
    url, token = body.get("url"), body.get("token")
    if not isinstance(url, str) or not isinstance(token, str):
        return None
    return f"{url.rstrip('/')}/{page.lstrip('/')}?token={quote(token, safe='')}"


def write_opener(opener: Path, url: str) -> str:
    """Write the 0600 file that forwards a browser to ``url``; its ``file://`` address names no secret."""
    write_atomic(
        opener,
        f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={html.escape(url)}">'
        f"<title>Consentry</title><p>Opening your Consentry page…</p>".encode(),
        mode=0o600,
    )
    return opener.as_uri()


def open_in_browser(opener: Path, url: str, launch: Callable[[str], bool] | None = None) -> bool:
    """Open ``url`` through the 0600 file ``opener`` that forwards to it, as Jupyter does.

    The browser's command line then names only the file (``file://...``), never the token. ``launch``
    starts a browser on a URL (default: the employee's ``$BROWSER``, else the desktop's: ``chosen_browser``);
    False when no browser could be started.
    """
    return bool((launch or chosen_browser())(write_opener(opener, url)))


def browser_named() -> str | None:
    """The browser command(s) the employee chose in ``$BROWSER``, if any (to name it when it fails)."""
    import os

    return os.environ.get("BROWSER") or None


def chosen_browser() -> Callable[[str], bool]:
    """The employee's ``$BROWSER`` alone when set, else the desktop's default browser.

    ``webbrowser.open`` tries every browser it knows after the one in ``$BROWSER`` and reports success
    if any starts, so ``BROWSER=/bin/false`` would open another browser (or none, and still say it did).
    """
    import os
    import webbrowser

    chosen = [command for command in (browser_named() or "").split(os.pathsep) if command]
    if not chosen:
        return webbrowser.open

    def launch(url: str) -> bool:
        return any(webbrowser.GenericBrowser(command).open(url) for command in chosen)

    return launch
