"""A real XEMBED tray host (trayer) on a test X server, and how to look at the Consentry icon docked in it.

Every look opens its own X connection and closes it, so nothing here shares a connection with the
tray under test.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

from devkit.components import require_executable
from devkit.xserver import XServer

ICON_CLASS = "consentrySystemTrayIcon"  # pystray's WM_CLASS instance for the icon named "consentry"
PANEL_HEIGHT = 32  # trayer's height below, in pixels
SLOT = 24  # the slot trayer gives our icon: the 24x24 minimum pystray asks for (trayer makes it 24x30)


def tray_host(x: XServer) -> subprocess.Popen[bytes]:
    trayer = require_executable("trayer", "trayer")
    host = subprocess.Popen(
        [trayer, "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200"]
        + ["--heighttype", "pixel", "--height", str(PANEL_HEIGHT), "--SetDockType", "false", "--transparent", "false"],
        env=x.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    x.children.append(host)
    x.wait_for(lambda: tray_owner(x) is not None, "trayer to own the system tray selection")
    return host


def tray_owner(x: XServer) -> int | None:
    from Xlib import X
    from Xlib.display import Display

    display = Display(x.display)
    try:
        owner = display.get_selection_owner(display.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return None if owner == X.NONE else int(owner.id)
    finally:
        display.close()


def find_window(x: XServer, instance: str) -> Any:
    """(display, window) of the first window whose WM_CLASS instance is ``instance``, or (display, None)."""
    from Xlib.display import Display

    display = Display(x.display)
    pending = [display.screen().root]
    while pending:
        window = pending.pop()
        cls = window.get_wm_class()
        if cls and cls[0] == instance:
            return display, window
        pending += window.query_tree().children
    return display, None


def docked_icon(x: XServer) -> tuple[str, list[str]] | None:
    """(window name, its ancestors' names) of our tray icon window, if it exists."""
    display, window = find_window(x, ICON_CLASS)
    try:
        if window is None:
            return None
        ancestors: list[str] = []
        parent = window.query_tree().parent
        while parent and parent.id != display.screen().root.id:
            ancestors.append(parent.get_wm_name() or "")
            parent = parent.query_tree().parent
        return window.get_wm_name() or "", ancestors
    finally:
        display.close()


class IconLook(NamedTuple):
    title: str
    width: int
    height: int
    mapped: bool
    docked: bool


def look(x: XServer) -> IconLook | None:
    """The icon's title, size, whether it is viewable and whether it sits in the tray host."""
    display, window = find_window(x, ICON_CLASS)
    try:
        if window is None:
            return None
        geo = window.get_geometry()
        tree = window.query_tree()
        viewable = window.get_attributes().map_state == 2  # IsViewable
        return IconLook(window.get_wm_name() or "", geo.width, geo.height, viewable, tree.parent.id != tree.root.id)
    finally:
        display.close()


def wait_title(x: XServer, prefix: str, timeout: float = 20.0) -> None:
    """Wait until the icon's title (its tooltip, the state in words) starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    title = ""
    while time.monotonic() < deadline:
        title = (docked_icon(x) or ("", []))[0]
        if title.startswith(prefix):
            return
        time.sleep(0.1)
    raise AssertionError(f"the tray still says {title!r}, not {prefix!r}")


def screenshot(x: XServer, instance: str, save_to: Path) -> Any:
    """A window as drawn on screen (python-xlib GetImage into Pillow), saved as a PNG to look at."""
    from PIL import Image
    from Xlib import X

    display, window = find_window(x, instance)
    try:
        assert window is not None, f"no {instance} window to photograph"
        geo = window.get_geometry()
        raw = window.get_image(0, 0, geo.width, geo.height, X.ZPixmap, 0xFFFFFFFF)
        image = Image.frombytes("RGB", (geo.width, geo.height), raw.data, "raw", "BGRX")
        image.save(save_to)
        return image
    finally:
        display.close()


def click_icon(x: XServer, button: str = "1") -> None:
    display, window = find_window(x, ICON_CLASS)
    try:
        assert window is not None
        geo = window.get_geometry()
        target = (str(window.id), str(geo.width // 2), str(geo.height // 2))
    finally:
        display.close()
    x.xdotool("mousemove", "--window", *target)
    x.xdotool("click", button)


def mapped_menu(x: XServer) -> bool:
    display, window = find_window(x, "!menu")  # Tk names its menu windows so
    try:
        return window is not None and window.get_attributes().map_state == 2  # IsViewable
    finally:
        display.close()
