"""The X11 (XEMBED) icon window: updated only by pystray's own event loop, watched through our own connection.

Why this module exists (issue 14). pystray 0.19's ``xorg`` backend, when a property such as ``icon``
or ``title`` is set from another thread, writes a message on pystray's X connection from that thread
and blocks until pystray's loop has run the update. python-xlib (0.33) does not survive two threads
on one connection: when the calling thread flushes while the loop thread waits for an event or a
reply, a request can stay queued unsent (the tray kept "off" on screen while the agent captured) or
the loop thread waits for a wake-up that never comes, with the caller blocked on it and the tray's
lock held (the freeze: no drawing, no menu, no more polling, every thread parked on a futex).

So here every connection has one thread. pystray's connection is used only by pystray's loop thread:
we hand it the new image and title and post a ClientMessage from our own connection (used only by
the tray's UI thread), and a handler we add to pystray's loop applies them. Nothing ever waits for the
loop: the UI thread reads the window's title back through its own connection to see whether the
update landed, and if the loop is stuck it writes the title itself and says so in the log.

An update never asks the tray host to dock the window again (pystray's ``_update_icon`` does, on
every image): a docked window is only redrawn, which is what kept trayer from collapsing it to 1 px.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SHOW_ATOM = "_CONSENTRY_TRAY_SHOW"
QUIT_ATOM = "_CONSENTRY_TRAY_QUIT"


@dataclass(frozen=True)
class View:
    image: Any  # a PIL image
    title: str


def supported(icon: Any) -> bool:
    """Whether ``icon`` is pystray's xorg icon as this module knows it (else use pystray's setters)."""
    return all(hasattr(icon, name) for name in ("_window", "_display", "_message_handlers", "_draw", "_assert_docked"))


class LoopSide:
    """What runs in pystray's loop thread: apply the latest view; dock only when not docked."""

    def __init__(self, icon: Any, on_click: Any) -> None:
        from Xlib import X

        self._icon = icon
        self._view: View | None = None
        self._view_lock = threading.Lock()  # only swaps a reference: never held across X calls
        display = icon._display
        self._show = display.intern_atom(SHOW_ATOM)
        self._quit = display.intern_atom(QUIT_ATOM)
        handlers = icon._message_handlers
        pystray_client_message = handlers.get(X.ClientMessage)

        def on_client_message(event: Any) -> None:
            if event.client_type == self._show:
                self._apply()
            elif event.client_type == self._quit:
                icon.stop()
            elif pystray_client_message is not None:
                pystray_client_message(event)

        handlers[X.ClientMessage] = on_client_message
        # pystray 0.19 handles ButtonPress but never selects it on its window, so clicks are not
        # delivered at all (pystray issue #151), and it reacts to the left button only, where trays
        # open menus on the right: hear both. Called before run(), so no other thread uses the display.
        icon._window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
        handlers[X.ButtonPress] = lambda event: on_click() if event.detail in (1, 3) else None

    def offer(self, view: View) -> None:
        with self._view_lock:
            self._view = view

    def _apply(self) -> None:
        with self._view_lock:
            view = self._view
        if view is None:
            return
        icon = self._icon
        window = icon._window
        icon._icon = view.image
        icon._icon_data = None  # pystray redraws from _icon at the window's size
        icon._title = view.title
        window.set_wm_name(view.title)
        tree = window.query_tree()
        if tree.parent.id == tree.root.id:  # not (or no longer) in a tray host: ask to dock
            try:
                icon._assert_docked()
                icon._visible = True
            except AssertionError:
                log.debug("no tray host to dock in yet")
        icon._draw()
        icon._display.flush()


class WatchSide:
    """What the tray's UI thread uses: its own X connection, to post updates and look at the window."""

    def __init__(self, window_id: int) -> None:
        from Xlib.display import Display

        self._display = Display()
        self._window = self._display.create_resource_object("window", window_id)
        self._show = self._display.intern_atom(SHOW_ATOM)
        self._quit = self._display.intern_atom(QUIT_ATOM)

    def post_show(self) -> None:
        self._post(self._show)

    def post_quit(self) -> None:
        self._post(self._quit)

    def _post(self, atom: int) -> None:
        from Xlib import X
        from Xlib.protocol import event

        message = event.ClientMessage(window=self._window, client_type=atom, data=(32, (X.CurrentTime, 0, 0, 0, 0)))
        # Event mask 0: the X server gives it to the client that created the window, pystray's loop.
        self._window.send_event(message, event_mask=0)
        self._display.flush()

    def title(self) -> str | None:
        name = self._window.get_wm_name()
        return name if isinstance(name, str) else None

    def docked(self) -> bool:
        tree = self._window.query_tree()
        return bool(tree.parent.id != tree.root.id)

    def write_title(self, title: str) -> None:
        """Set the title from here: only when pystray's loop no longer does (it is stuck)."""
        self._window.set_wm_name(title)
        self._display.flush()

    def close(self) -> None:
        self._display.close()
