"""Consentry's workstation side: the consent-gated capture agent and the ``consentry`` CLI.

Importing this package (or the CLI) never imports pynput, python-xlib or watchdog: those are loaded
only when a capture source starts, so an unsupported platform is an error when used, not at import.
"""

from agent.errors import AgentError, AlreadyRunning, SourceUnavailable, UnsupportedPlatform

__all__ = ["AgentError", "AlreadyRunning", "SourceUnavailable", "UnsupportedPlatform"]
