"""The tray icon itself: the only module that imports pystray (lazily), plus Tk's menu for bare X11 trays.

pystray picks its backend from ``PYSTRAY_BACKEND``: AppIndicator or GTK need PyGObject (``gi``), which a
virtual environment usually lacks, so without it we choose the ``xorg`` backend (python-xlib, the XEMBED
system-tray protocol every X11 tray host speaks). That backend has no menus: a left or right click there
pops the same menu up with Tk instead. On macOS and Windows pystray's own backends are used as they are.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from agent.tray.actions import Outcome, perform
from agent.tray.icon import render
from agent.tray.model import SEPARATOR, Action, MenuEntry, Quit, TrayState, build_menu, icon_for, tooltip
from agent.tray.state import read_state

log = logging.getLogger(__name__)
NAME = "consentry"


def choose_backend(environ: dict[str, str] | None = None) -> str | None:
    """The pystray backend to force, or None to let pystray choose (macOS, Windows, or GTK present)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    if env.get("PYSTRAY_BACKEND"):
        return env["PYSTRAY_BACKEND"]  # the employee's or IT's explicit choice wins
    if importlib.util.find_spec("gi") is not None:
        return None  # pystray tries AppIndicator, then GTK, then xorg
    return "xorg"


class TrayApp:
    """Keeps the icon, tooltip and menu in step with the state; performs what the employee picks."""

    def __init__(
        self,
        refresh_seconds: float = 2.0,
        read: Callable[[], TrayState] = read_state,
        act: Callable[[Action], Outcome] = perform,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self._read = read
        self._act = act
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stale = False
        self.state = read()
        self.message: str | None = None  # the last action's problem, shown at the top of the menu
        self.icon: Any = None
        self._probe: Any = None  # an X connection of the refresh thread, to see whether the icon docked

    # --- running -----------------------------------------------------------------------------------

    def run(self) -> None:
        backend = choose_backend()
        if backend:
            os.environ["PYSTRAY_BACKEND"] = backend
        # pystray logs docking failures with tracebacks; they must not reach the employee's session log.
        logging.getLogger("pystray").addHandler(logging.NullHandler())
        logging.getLogger("pystray").propagate = False
        # When the X session ends under it, pystray's icon fails again while being collected at exit
        # ("Exception ignored in __del__" with a traceback): the tray is ending anyway, so note only its type.
        sys.unraisablehook = lambda u: log.debug("ignored at exit: %s", type(u.exc_value).__name__)
        import pystray

        self.icon = pystray.Icon(NAME, render(icon_for(self.state)), tooltip(self.state), menu=self._menu())
        if not getattr(pystray.Icon, "HAS_MENU", True):
            _listen_for_clicks(self.icon)
        self.icon.run(setup=self._setup)
        self._stop.set()

    def _setup(self, icon: Any) -> None:
        icon.visible = True
        threading.Thread(target=self._refresh_loop, name="tray-refresh", daemon=True).start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as exc:  # e.g. the display went away: keep trying, never print a traceback
                log.warning("tray refresh failed: %s", type(exc).__name__)

    def refresh(self, force: bool = False) -> None:
        # One refresh at a time (the timer's and an action's): an older read must not overwrite a newer one.
        with self._lock:
            state = self._read()
            if force or state != self.state or self._stale:
                self.state = state
                self._stale = True  # until the icon really shows it: a failed update is retried next time
                self._apply()
                self._stale = False
            elif self._embedded() is False:
                # pystray's X11 backend asks to dock only when the icon is set, once: ask again when no tray
                # host was there yet, or when it was not ready for the request (a panel starting with us).
                self.icon.icon = render(icon_for(state))

    def _embedded(self) -> bool | None:
        """Whether the X11 icon window sits in a tray host; None when not on the X11 backend."""
        window_id = getattr(getattr(self.icon, "_window", None), "id", None)
        if window_id is None:
            return None
        try:
            if self._probe is None:
                from Xlib.display import Display

                self._probe = Display()  # its own connection: pystray's belongs to its loop thread
            tree = self._probe.create_resource_object("window", window_id).query_tree()
            return bool(tree.parent.id != tree.root.id)
        except Exception:  # the window or the display is gone: nothing to dock any more
            return None

    def _apply(self) -> None:
        icon = self.icon
        if icon is None:
            return
        icon.icon = render(icon_for(self.state))
        icon.title = tooltip(self.state)
        icon.menu = self._menu()
        icon.update_menu()

    # --- the menu ----------------------------------------------------------------------------------

    def entries(self) -> tuple[MenuEntry, ...]:
        entries = build_menu(self.state)
        return (MenuEntry(self.message), SEPARATOR, *entries) if self.message else entries

    def _menu(self) -> Any:
        import pystray

        if getattr(pystray.Icon, "HAS_MENU", True):
            return pystray.Menu(*(self._item(e) for e in self.entries()))
        # No native menu (xorg): a click runs the default item, which pops the menu up with Tk.
        return pystray.Menu(pystray.MenuItem("Consentry", self._popup, default=True))

    def _item(self, entry: MenuEntry) -> Any:
        import pystray

        if entry == SEPARATOR:
            return pystray.Menu.SEPARATOR
        if entry.children:
            return pystray.MenuItem(entry.label, pystray.Menu(*(self._item(c) for c in entry.children)))
        action = entry.action
        if action is None:
            return pystray.MenuItem(entry.label, None, enabled=False)
        return pystray.MenuItem(entry.label, lambda: self.choose(action))

    def _popup(self) -> None:
        try:
            from agent.tray.popup import popup

            popup(self.entries(), self.choose)
        except Exception as exc:  # a missing Tk or a vanished display must not end the tray
            log.warning("tray menu could not be shown: %s", type(exc).__name__)

    def choose(self, action: Action) -> None:
        """The employee picked ``action``: quit now, anything else off the UI thread."""
        if isinstance(action, Quit):
            self._stop.set()
            if self.icon is not None:
                self.icon.stop()
            return
        threading.Thread(target=self._perform, args=(action,), name="tray-action", daemon=True).start()

    def _perform(self, action: Action) -> None:
        outcome = self._act(action)
        self.message = None if outcome.ok else outcome.message
        try:
            if not outcome.ok and self.icon is not None and getattr(self.icon, "HAS_NOTIFICATION", False):
                self.icon.notify(outcome.message, "Consentry")
            self.refresh(force=True)
        except Exception as exc:  # the outcome is in the ledger already; the icon catches up on the next refresh
            log.warning("tray update failed: %s", type(exc).__name__)


def _listen_for_clicks(icon: Any) -> None:
    """Make pystray's X11 icon hear clicks: left or right button opens the menu.

    pystray 0.19's xorg backend handles ButtonPress but never selects it on its window, so clicks
    are not delivered at all (pystray issue #151); and it reacts to the left button only, where
    trays open menus on the right. Called before ``run()``, so no other thread uses the display yet.
    """
    from Xlib import X

    window = getattr(icon, "_window", None)
    handlers = getattr(icon, "_message_handlers", None)
    if window is None or not isinstance(handlers, dict):
        return  # a pystray that changed inside: leave it as it is
    window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    handlers[X.ButtonPress] = lambda event: icon() if event.detail in (1, 3) else None
