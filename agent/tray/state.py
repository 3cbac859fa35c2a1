"""Read the tray's state: the same report as ``consentry status`` (vault, status, control socket)."""

from __future__ import annotations

import logging
import sqlite3

from agent.tray.model import TrayState
from kit.page_link import page_link
from protocol.errors import ConsentryError
from vault.paths import default_layout

log = logging.getLogger(__name__)

AGENT_TIMEOUT = 2.0  # seconds the agent has to answer: a frozen one must not hold the tray's look for long


def read_state() -> TrayState:
    """The current state; a vault that cannot be read shows as a problem, never as an exception."""
    from agent.status_report import collect_status

    page = page_link(default_layout().page_link) is not None
    try:
        report = collect_status(agent_timeout=AGENT_TIMEOUT)
    except ConsentryError as exc:
        report = {"policy": {"state": "ok"}, "error": f"the vault cannot be read ({exc}); run: consentry doctor"}
    except (sqlite3.Error, OSError) as exc:
        log.warning("tray could not read the status: %s", type(exc).__name__)
        report = {"policy": {"state": "ok"}, "error": f"the vault is busy or unreadable ({type(exc).__name__})"}
    return TrayState.from_report(report, page_available=page)
