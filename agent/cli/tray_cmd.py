"""``consentry tray``: the employee's tray icon (state at a glance; revoke, pause, resume in one click)."""

from __future__ import annotations

import os
import sys

import click

from agent.cli import common


@click.command()
@click.option(
    "--refresh",
    type=click.FloatRange(0.2, 60.0),
    default=2.0,
    show_default=True,
    help="Seconds between looks at the agent's state.",
)
def tray(refresh: float) -> None:
    """Show Consentry in the system tray; started with your desktop session.

    The icon's shape and colour say whether anything is captured: green disc capturing, amber bars
    paused, grey ring off, red triangle a problem. Its menu lists each category with its state;
    revoking is one click, granting opens the notice in your browser to confirm there. Quitting the
    tray does not stop the agent.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise click.ClickException("there is no graphical session here (DISPLAY is not set); use: consentry status")
    from agent.errors import AlreadyRunning
    from agent.instance import InstanceLock

    lock = InstanceLock(common.layout().tray_lock)
    try:
        lock.acquire()
    except AlreadyRunning:
        raise click.ClickException("the Consentry tray is already running for this user") from None
    try:
        _log_to_session()
        from agent.tray.app import TrayApp

        try:
            app = TrayApp(refresh_seconds=refresh)
            app.run()
        except ImportError as exc:
            raise click.ClickException(
                f"the tray cannot start: {exc.name or 'a module'} is missing (install Consentry's workstation package)"
            ) from None
        except Exception as exc:  # e.g. the X server refused the connection: a sentence, never a traceback
            raise click.ClickException(f"the tray cannot start ({type(exc).__name__}); use: consentry status") from None
    finally:
        lock.release()


def _log_to_session() -> None:
    """The tray's lines (a change of what it shows; why it turned unknown) go to stderr, the session log."""
    import logging

    logger = logging.getLogger("agent.tray")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s consentry-tray %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
