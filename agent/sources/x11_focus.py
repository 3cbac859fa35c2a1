"""The focused application on X11 (python-xlib): its WM_CLASS, never its title."""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import SourceUnavailable

log = logging.getLogger("consentry.agent")

LOST_REASON = "lost the connection to the X display"
MAX_PARENT_WALK = 32


class X11FocusBackend:
    """``_NET_ACTIVE_WINDOW`` on the root when a window manager sets it, else the input focus,
    walked up the window tree to the first window that has a WM_CLASS."""

    def __init__(self, display_name: str | None = None) -> None:
        try:
            from Xlib import Xatom, display, error
        except ImportError:
            raise SourceUnavailable("python-xlib is not installed (pip install python-xlib)") from None
        self._Xatom = Xatom
        self._errors: tuple[type[BaseException], ...] = (error.XError,)
        self._closed_errors: tuple[type[BaseException], ...] = (error.ConnectionClosedError, OSError)
        try:
            self._display: Any = display.Display(display_name)
        except (error.DisplayError, OSError, ValueError):
            raise SourceUnavailable("cannot connect to the X display") from None
        self._root = self._display.screen().root
        self._active = self._display.intern_atom("_NET_ACTIVE_WINDOW")

    def focused_names(self) -> tuple[str | None, ...]:
        try:
            window = self._active_window() or self._input_focus()
            wm_class = self._wm_class_upwards(window) if window is not None else None
        except self._closed_errors:
            raise SourceUnavailable(LOST_REASON) from None
        except self._errors:
            return ()  # the window went away between two requests: nothing focused this instant
        if not wm_class:
            return ()
        instance, klass = wm_class
        return (klass, instance)

    def _active_window(self) -> Any:
        prop = self._root.get_full_property(self._active, self._Xatom.WINDOW)
        if prop is None or not prop.value or not prop.value[0]:
            return None
        return self._display.create_resource_object("window", int(prop.value[0]))

    def _input_focus(self) -> Any:
        focus = self._display.get_input_focus().focus
        if isinstance(focus, int):  # X.NONE or X.PointerRoot
            return None
        return focus

    def _wm_class_upwards(self, window: Any) -> tuple[str, str] | None:
        for _ in range(MAX_PARENT_WALK):
            wm_class = window.get_wm_class()
            if wm_class:
                return (str(wm_class[0]), str(wm_class[1]))
            tree = window.query_tree()
            if not tree.parent or tree.parent == self._root or tree.parent.id == self._root.id:
                return None
            window = tree.parent
        return None

    def close(self) -> None:
        try:
            self._display.close()
        except Exception as exc:  # closing a dead connection raises; it is closed either way
            log.debug("x11 focus close: %s", type(exc).__name__)
