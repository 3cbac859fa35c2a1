"""Capture sources, each behind the one ``Source`` protocol; ``make_source`` picks the backend.

Platform modules (pynput, python-xlib, watchdog, AppKit, ctypes.windll) are imported only inside
``start``: importing this package never touches them.
"""

from agent.sources.base import Source, SourceKind
from agent.sources.select import SourceContext, make_source

__all__ = ["Source", "SourceContext", "SourceKind", "make_source"]
