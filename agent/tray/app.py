"""The tray icon itself: the only module that imports pystray (lazily), plus Tk's menu for bare X11 trays.

pystray picks its backend from ``PYSTRAY_BACKEND``: AppIndicator or GTK need PyGObject (``gi``), which a
virtual environment usually lacks, so without it we choose the ``xorg`` backend (python-xlib, the XEMBED
system-tray protocol every X11 tray host speaks). That backend has no menus: a left or right click there
pops the same menu up with Tk instead, in a thread of its own. On macOS and Windows pystray's own
backends are used as they are.

Three threads, none waiting on another while holding anything:

- the **poller** reads the state (the same report as ``consentry status``) every ``refresh_seconds``,
  and right after an action; it only records what it read and when;
- the **UI thread** decides what to show, twice a second: the last confirmed state while it is fresh,
  otherwise an explicit "state unknown" with the reason (the agent does not answer, the check itself is
  stuck or failed), so the icon never shows a state nobody confirmed in the last few seconds;
- pystray's **loop** draws. On X11 it is handed each new view without anyone waiting for it
  (``agent.tray.xembed`` says why: sharing its X connection between threads froze the tray).

The log gets a line when what the icon shows changes, and a warning saying why when it turns unknown;
never one per look.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.tray.actions import Outcome, perform
from agent.tray.icon import render
from agent.tray.model import SEPARATOR, Action, MenuEntry, Quit, TrayState, build_menu, icon_for, icon_kind, tooltip
from agent.tray.state import read_state

log = logging.getLogger(__name__)
NAME = "consentry"

STALE_MARGIN = 2.5  # seconds past the poll interval before a state counts as unconfirmed
WATCH_SECONDS = 0.5  # how often the UI thread looks, whether or not a poll finished
FIRST_LOOK_SECONDS = 3.0  # how long the icon waits for the first state before showing "unknown"
LOOP_GRACE_SECONDS = 2.0  # how long pystray's loop may take to show an update before we say it is stuck
DOCK_RETRY_SECONDS = 2.0  # how often to ask again to dock while no tray host has taken the icon


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
    """Keeps the icon, tooltip and menu in step with a recently confirmed state; performs what the employee picks."""

    def __init__(
        self,
        refresh_seconds: float = 2.0,
        read: Callable[[], TrayState] = read_state,
        act: Callable[[Action], Outcome] = perform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.stale_after = refresh_seconds + STALE_MARGIN
        self._read = read
        self._act = act
        self._clock = clock
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._changed = threading.Event()
        self._first_read = threading.Event()
        self._quit = threading.Event()
        # Guards the poller's record below; held only to copy a few fields, never while reading or drawing.
        self._record = threading.Lock()
        self._confirmed: TrayState | None = None
        self._confirmed_at = -math.inf
        self._reading_since: float | None = None
        self._read_failure: str | None = None
        self.state = TrayState.unknown_state("not checked yet")  # what the icon shows now
        self.message: str | None = None  # the last action's problem, shown at the top of the menu
        self.icon: Any = None
        self._loop_side: Any = None  # agent.tray.xembed.LoopSide on X11
        self._menu_open = threading.Lock()  # one Tk menu at a time
        self._click_pending = threading.Event()  # a click the menu thread has not answered yet

    # --- what to show --------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the state once and record it with the time it was confirmed (the poller's whole job)."""
        with self._record:
            self._reading_since = self._clock()
        try:
            state = self._read()
        except Exception as exc:  # read_state turns known failures into a state; anything else is a bug
            with self._record:
                self._reading_since = None
                self._read_failure = f"the tray could not read the state ({type(exc).__name__})"
        else:
            with self._record:
                self._reading_since = None
                self._read_failure = None
                self._confirmed = state
                self._confirmed_at = self._clock()
        self._first_read.set()
        self._changed.set()

    def wanted(self) -> TrayState:
        """The last confirmed state while it is fresh; otherwise "state unknown", saying why."""
        now = self._clock()
        with self._record:
            confirmed, confirmed_at = self._confirmed, self._confirmed_at
            reading_since, failure = self._reading_since, self._read_failure
        if confirmed is not None and now - confirmed_at <= self.stale_after and failure is None:
            return confirmed
        if failure is not None:
            why = failure
        elif reading_since is not None and now - reading_since > self.stale_after:
            why = f"the tray's look at the agent has not finished for over {self.stale_after:g} s"
        elif confirmed is None:
            why = "not checked yet"
        else:
            why = f"not confirmed for over {self.stale_after:g} s"
        page = confirmed.page_available if confirmed is not None else False
        return TrayState.unknown_state(why, page_available=page)

    def _note(self, before: TrayState, after: TrayState) -> None:
        """One log line per change of what the icon shows (never one per look)."""
        if tooltip(before) == tooltip(after):
            return
        if icon_kind(after) == "unknown":
            log.warning("tray: state unknown: %s", after.unknown)
        else:
            log.info("tray: %s", tooltip(after).removeprefix("Consentry: "))

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

        threading.Thread(target=self._poll_loop, name="tray-poll", daemon=True).start()
        self._first_read.wait(FIRST_LOOK_SECONDS)
        shown = self.wanted()
        self._note(self.state, shown)
        self.state = shown
        self.icon = pystray.Icon(NAME, render(icon_for(shown)), tooltip(shown), menu=self._menu())
        from agent.tray import xembed

        if not getattr(pystray.Icon, "HAS_MENU", True) and xembed.supported(self.icon):
            self._loop_side = xembed.LoopSide(self.icon, on_click=self._popup)
            self._loop_side.offer(xembed.View(render(icon_for(shown)), tooltip(shown)))
        self.icon.run(setup=self._setup)
        self._stop.set()

    def _setup(self, icon: Any) -> None:
        if self._loop_side is None:
            icon.visible = True  # other backends: pystray's own thread-safe setters
        threading.Thread(target=self._ui_loop, name="tray-ui", daemon=True).start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._poll_now.wait(self.refresh_seconds)
            self._poll_now.clear()

    def _ui_loop(self) -> None:
        watch = None
        posted_at: float | None = None  # when an X11 update was handed to pystray's loop, until seen
        try:
            if self._loop_side is not None:
                from agent.tray import xembed

                watch = xembed.WatchSide(self.icon._window.id)
                watch.post_show()  # the first view: docks the icon
                posted_at = self._clock()
            while not self._stop.is_set():
                if self._quit.is_set() and watch is not None:
                    watch.post_quit()  # pystray's loop stops itself; run() then returns
                    return
                try:
                    posted_at = self._show(watch, posted_at)
                except Exception as exc:  # e.g. the display went away: keep trying, never print a traceback
                    log.warning("tray update failed: %s", type(exc).__name__)
                self._changed.wait(WATCH_SECONDS)
                self._changed.clear()
        finally:
            if watch is not None:
                try:
                    watch.close()
                except Exception:  # the display is gone already
                    pass

    def _show(self, watch: Any, posted_at: float | None) -> float | None:
        """Bring the icon to ``wanted()``; returns when an X11 update was posted and not yet seen."""
        wanted = self.wanted()
        title = tooltip(wanted)
        if wanted != self.state:
            self._note(self.state, wanted)
            self.state = wanted
            if watch is None:
                self._apply_with_setters()
                return None
            from agent.tray import xembed

            self._loop_side.offer(xembed.View(render(icon_for(wanted)), title))
            watch.post_show()
            return self._clock()
        if watch is None:
            return None
        seen = watch.title()
        if seen == title:
            if not watch.docked() and self._clock() - (posted_at or -math.inf) > DOCK_RETRY_SECONDS:
                watch.post_show()  # no tray host yet, or a new one: ask pystray's loop to dock again
                return self._clock()
            return None if watch.docked() else posted_at
        if posted_at is None:  # the window says something else (a tray host re-created it, say): show again
            watch.post_show()
            return self._clock()
        if self._clock() - posted_at > LOOP_GRACE_SECONDS:
            # pystray's loop did not take the update: say so, and put the truth in the title ourselves.
            log.warning("tray: the icon's event loop did not take the update; writing the title directly")
            watch.write_title(title)
            watch.post_show()
            return self._clock()
        return posted_at

    def _apply_with_setters(self) -> None:
        icon = self.icon
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
        # No native menu (xorg): a click pops the menu up with Tk (the click handler in xembed).
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
        """A click on the X11 icon: show the menu from a thread of its own, so pystray's loop keeps drawing."""
        self._click_pending.set()
        if not self._menu_open.acquire(blocking=False):
            return  # a menu is closing right now: its thread shows it again for this click
        threading.Thread(target=self._popup_thread, name="tray-menu", daemon=True).start()

    def _popup_thread(self) -> None:
        try:
            from agent.tray.popup import popup

            while self._click_pending.is_set():
                self._click_pending.clear()
                popup(self.entries(), self.choose)
        except Exception as exc:  # a missing Tk or a vanished display must not end the tray
            log.warning("tray menu could not be shown: %s", type(exc).__name__)
        finally:
            self._menu_open.release()
        if self._click_pending.is_set() and self._menu_open.acquire(blocking=False):  # clicked as we closed
            threading.Thread(target=self._popup_thread, name="tray-menu", daemon=True).start()

    def choose(self, action: Action) -> None:
        """The employee picked ``action``: quit now, anything else off the UI thread."""
        if isinstance(action, Quit):
            self._stop_polling_and_quit()
            return
        threading.Thread(target=self._perform, args=(action,), name="tray-action", daemon=True).start()

    def _stop_polling_and_quit(self) -> None:
        if self._loop_side is not None:
            self._quit.set()  # the UI thread tells pystray's loop (never from this thread: see xembed)
            self._changed.set()
        elif self.icon is not None:
            self.icon.stop()

    def _perform(self, action: Action) -> None:
        outcome = self._act(action)
        self.message = None if outcome.ok else outcome.message
        try:
            if not outcome.ok and self.icon is not None and getattr(self.icon, "HAS_NOTIFICATION", False):
                self.icon.notify(outcome.message, "Consentry")
        except Exception as exc:  # the outcome is in the ledger already
            log.warning("tray notification failed: %s", type(exc).__name__)
        self._poll_now.set()  # look again now: the icon follows within one read
