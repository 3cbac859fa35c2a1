"""A real headless Chromium (Debian chromium + chromedriver, driven by Selenium) and a hostile local site.

Skips on a laptop without them; fails under CI=true (devkit/components.py).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devkit.components import require, require_executable

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1800",
)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A fresh headless Chromium with an empty profile; Selenium Manager never downloads anything."""
    binary = require_executable("chromium", "chromium")
    driver_path = require_executable("chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require(False, "selenium", "pip install -e '.[test]'")
        raise
    options = Options()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # so tests can see CSP violations
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``predicate`` until it is truthy; an element of a page being replaced counts as "not yet"."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except WebDriverException as exc:
            if not _page_being_replaced(exc):
                raise
            value = None  # a form was submitted and the next page is loading
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def still_attached(element: Any) -> bool:
    """Whether ``element`` is still in the page shown (False once a submitted form's next page replaced it)."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_displayed()
        return True
    except WebDriverException as exc:
        if not _page_being_replaced(exc):
            raise
        return False


def _page_being_replaced(exc: Exception) -> bool:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    # Mid-navigation Chrome may answer for an old node with an inspector error instead of "stale element".
    return isinstance(exc, (StaleElementReferenceException, NoSuchElementException)) or (
        "does not belong to the document" in str(exc)
    )


@contextmanager
def hostile_site(page: str) -> Iterator[str]:
    """Another origin on this machine (127.0.0.1, another port) serving ``page``; yields its URL."""
    body = page.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def attack_page(target: str, fields: dict[str, str]) -> str:
    """A page that POSTs ``fields`` to ``target`` twice: by fetch (no-cors, with cookies), then by a form."""
    import html
    import json

    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items()
    )
    return f"""<!doctype html><html><body><h1>cute cats</h1>
<form id="f" method="post" action="{html.escape(target)}">{inputs}</form>
<script>
const body = new URLSearchParams({json.dumps(fields)});
fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors", credentials: "include", body}})
  .catch(() => null)
  .finally(() => {{ document.title = "fetched"; setTimeout(() => document.getElementById("f").submit(), 200); }});
</script></body></html>"""
