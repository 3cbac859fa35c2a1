"""Where the agent's local page is: its loopback address and per-session token (``page.json``, 0600).

The agent writes this file when its page server starts and removes it when it stops; the tray and
``consentry`` commands read it to open a page for the employee. Like a Jupyter server's runtime file,
the token in it is the only credential the page accepts, so the file is owner-only in the 0700
runtime folder and the token is never logged or printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from vault.atomic import write_atomic

PAGE_LINK_VERSION = 1


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
