"""The focused application on macOS: NSWorkspace's frontmost application (pyobjc), never a title."""

from __future__ import annotations

from typing import Any

from agent.errors import SourceUnavailable


class MacFocusBackend:
    def __init__(self, workspace: Any = None) -> None:
        if workspace is None:
            try:
                from AppKit import NSWorkspace
            except ImportError:
                raise SourceUnavailable(
                    "focused-application tracking on macOS needs pyobjc (pip install pyobjc-framework-Cocoa)"
                ) from None
            workspace = NSWorkspace.sharedWorkspace()
        self._workspace = workspace

    def focused_names(self) -> tuple[str | None, ...]:
        app = self._workspace.frontmostApplication()
        if app is None:
            return ()
        # The application name first (it matches the allow-list), the bundle id for exclusions.
        return (app.localizedName(), app.bundleIdentifier())

    def close(self) -> None:
        self._workspace = None
