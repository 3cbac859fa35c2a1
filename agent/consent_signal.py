"""Asking a running agent to re-read consent now, and whether it confirmed (the CLI, the tray, the page)."""

from __future__ import annotations

from vault.paths import Layout

CONFIRM_TIMEOUT_SECONDS = 10.0


def ask_agent(layout: Layout) -> tuple[bool, str | None]:
    """Ask a running agent to re-read consent now: (confirmed, why not). Used by the CLI and the tray.

    ``(True, None)``: the agent confirmed; ``(False, None)``: no agent runs; ``(False, message)``: an
    agent is there but did not confirm (the ledger holds the change anyway, and the agent also
    notices it by itself within a second).
    """
    from agent.control import notify_consent_changed
    from agent.errors import ControlError

    try:
        return notify_consent_changed(layout, timeout=CONFIRM_TIMEOUT_SECONDS), None
    except (ControlError, OSError) as exc:  # an agent is there but did not confirm: say so, never hang
        return False, (
            f"the change is recorded, but the running agent could not be reached ({type(exc).__name__}). "
            "It re-reads consent every second; check with: consentry status"
        )
