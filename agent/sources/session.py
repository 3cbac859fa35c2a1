"""Can input be captured in this desktop session? Native Wayland and a missing display cannot."""

from __future__ import annotations

from collections.abc import Mapping

WAYLAND_REASON = (
    "native Wayland session: pynput cannot see other applications' input "
    "(log in to an X11/Xorg session to capture keyboard, mouse and applications)"
)
NO_DISPLAY_REASON = "no graphical session: DISPLAY is not set for the agent"


def session_problem(platform: str, env: Mapping[str, str]) -> str | None:
    """Why keyboard, mouse and focus capture cannot work here, or None when they can.

    Under native Wayland, DISPLAY usually points at XWayland, which only sees X11 clients' input:
    capturing through it would silently miss most applications, so Wayland wins over DISPLAY.
    """
    if platform in ("darwin", "win32"):
        return None
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" or env.get("WAYLAND_DISPLAY"):
        return WAYLAND_REASON
    if not env.get("DISPLAY"):
        return NO_DISPLAY_REASON
    return None
