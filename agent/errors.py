"""The agent's exception tree, one root; third-party errors are mapped where sources start.

AgentError
├── AlreadyRunning        another agent holds this employee's lock
├── HomeLost              the vault was removed or replaced while the agent ran
├── SourceUnavailable     a capture source cannot run here (no X display, Wayland, missing folder)
│   └── UnsupportedPlatform   no backend exists for this operating system
└── ControlError          the control socket answered with an error or garbage
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class AlreadyRunning(AgentError):
    """Only one agent per employee may run: it owns the lock file in the runtime folder."""


class HomeLost(AgentError):
    """The agent stopped by itself: its vault or lock file was removed or replaced under it."""


class SourceUnavailable(AgentError):
    """A source cannot capture here. The message is shown in ``consentry status``; it names no path."""


class UnsupportedPlatform(SourceUnavailable):
    """There is no capture backend for this operating system."""


class ControlError(AgentError):
    """The agent's control socket refused a request or sent a malformed answer."""
