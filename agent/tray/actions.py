"""Carry out a tray menu action through the same library calls as the CLI (ledger, then control socket).

Every function returns an ``Outcome`` with a sentence for the employee and never raises: a tray
must not die on a locked vault or an agent that does not answer, and no traceback may reach a user.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agent.consent_signal import ask_agent
from agent.tray.model import Action, OpenPage, Pause, Quit, Resume, Revoke, pause_end
from kit.page_link import OPENER_NAME, open_in_browser, page_link
from protocol.errors import ConsentryError, PolicyError
from protocol.timeutil import iso, utc_now
from vault import consent_ops
from vault.paths import Layout, default_layout, default_policy_path
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault

log = logging.getLogger(__name__)

# Where the employee is sent when no local page is running (the CLI does everything the page does).
CLI_FALLBACK = {
    "/mydata": "consentry mydata",
    "/batches": "consentry batches",
}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def _policy_or_defaults() -> MachinePolicy:
    # As the CLI's revoke/resume: an invalid policy never blocks a withdrawal; the defaults can only
    # make a withdrawal wider, never a grant.
    try:
        return load_policy(default_policy_path())
    except PolicyError:
        return MachinePolicy()


def _agent_said(layout: Layout, done: str, *, must_confirm: bool) -> Outcome:
    confirmed, problem = ask_agent(layout)
    if problem is not None and must_confirm:
        return Outcome(False, f"{done}, but {problem}")
    return Outcome(True, done + (" The agent confirmed it." if confirmed else ""))


def revoke(action: Revoke, now: datetime) -> Outcome:
    layout = default_layout()
    if not layout.vault_db.exists():
        return Outcome(True, "Nothing was ever granted on this computer; there is nothing to withdraw.")
    with Vault.open(layout) as vault:
        withdrawn = consent_ops.revoke(vault, _policy_or_defaults(), [action.category], method="tray", now=now)
    name = action.category.value
    if not withdrawn:
        return Outcome(True, f"{name} was not granted.")
    return _agent_said(layout, f"{name}: withdrawn.", must_confirm=True)


def pause(action: Pause, now: datetime) -> Outcome:
    layout = default_layout()
    until = pause_end(action.length, now)
    with Vault.open(layout, create=True) as vault:
        consent_ops.pause(vault, until=until, method="tray", now=now)
    return _agent_said(layout, f"Capture paused until {iso(until)}.", must_confirm=True)


def resume(_: Resume, now: datetime) -> Outcome:
    layout = default_layout()
    if not layout.vault_db.exists():
        return Outcome(True, "Nothing is paused.")
    with Vault.open(layout) as vault:
        resumed = consent_ops.resume(vault, _policy_or_defaults(), reason="employee", now=now)
    if not resumed:
        return Outcome(True, "Nothing was paused.")
    return _agent_said(layout, "Capture resumed.", must_confirm=False)


def open_page(action: OpenPage, opener: Callable[[str], bool] | None = None) -> Outcome:
    """Open a local page in the browser (``opener``, default ``webbrowser.open``) through the 0600
    forwarding file: the browser's command line names the file, never the session token."""
    layout = default_layout()
    url = page_link(layout.page_link, action.path)
    if url is None:
        if action.path.startswith("/consent/"):
            command = f"consentry consent grant {action.path.removeprefix('/consent/')}"
        else:
            command = CLI_FALLBACK.get(action.path, "consentry status")
        return Outcome(False, f"The local page is not running. Open a terminal and run: {command}")
    if not open_in_browser(layout.runtime_dir / OPENER_NAME, url, opener):
        return Outcome(False, "No web browser could be started to show the page.")
    return Outcome(True, "Opened in your browser.")


def perform(action: Action, now: datetime | None = None) -> Outcome:
    """Do ``action``; any failure becomes a sentence, never an exception."""
    when = now or utc_now()
    try:
        if isinstance(action, Revoke):
            return revoke(action, when)
        if isinstance(action, Pause):
            return pause(action, when)
        if isinstance(action, Resume):
            return resume(action, when)
        if isinstance(action, OpenPage):
            return open_page(action)
        if isinstance(action, Quit):
            return Outcome(True, "")
    except ConsentryError as exc:
        return Outcome(False, f"Nothing was changed: {exc}. Run: consentry doctor")
    except (sqlite3.Error, OSError) as exc:
        log.warning("tray action failed: %s", type(exc).__name__)
        return Outcome(False, f"Nothing was changed: the vault could not be used right now ({type(exc).__name__}).")
    except ValueError as exc:
        return Outcome(False, f"Nothing was changed: {exc}.")
    return Outcome(False, "unknown action")
