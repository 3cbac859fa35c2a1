"""Start and stop the employee's page inside the agent, and publish where it is (``page.json``)."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.web.employee import EmployeePage
from kit.page_link import OPENER_NAME, remove_page_link, write_page_link
from kit.web.peer import PeerCheckUnavailable
from kit.web.server import PageServer
from vault.paths import Layout

log = logging.getLogger("consentry.page")


def _notifier(layout: Layout) -> bool:
    """Tell the agent's loop through its control socket, exactly as ``consentry consent ...`` does."""
    from agent.consent_signal import ask_agent

    confirmed, _ = ask_agent(layout)
    return confirmed


def start_employee_page(layout: Layout, policy_path: Path, *, port: int = 0) -> PageServer | None:
    """Serve the page on 127.0.0.1 and write page.json; None (capture goes on) if it cannot start."""
    try:
        server = PageServer(EmployeePage(layout, policy_path, lambda: _notifier(layout)), port=port).start()
        write_page_link(layout.page_link, url=server.url, token=server.token)
    except OSError as exc:
        log.warning("the local page is unavailable (%s)", exc.strerror or type(exc).__name__)
        return None
    except PeerCheckUnavailable as exc:  # no page rather than a page another local user could use
        log.warning("the local page is not started: %s", exc)
        return None
    log.info("local page serving on 127.0.0.1:%d", server.port)
    return server


def stop_employee_page(layout: Layout, server: PageServer | None) -> None:
    remove_page_link(layout.page_link)
    (layout.runtime_dir / OPENER_NAME).unlink(missing_ok=True)  # the forwarder holds the (now dead) token
    if server is not None:
        server.stop()
