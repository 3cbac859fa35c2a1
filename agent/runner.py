"""Run the agent as a process: logging, the single-instance lock, the vault, the socket, signals."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from agent.control_server import ControlServer
from agent.daemon import Agent
from agent.errors import HomeLost
from agent.instance import InstanceLock
from agent.logs import setup_logging
from agent.sources.select import ReplayConfig
from agent.web.launch import start_employee_page, stop_employee_page
from vault.paths import Layout
from vault.vault import Vault

# An agent stopping (SIGTERM) flushes its windows first, in a fraction of a second; one started meanwhile
# (a restart, a session that logs in again) waits this long for it before saying another one runs.
STOPPING_AGENT_WAIT_SECONDS = 5.0


def run_agent(layout: Layout, policy_path: Path, *, replay: ReplayConfig | None = None, verbose: bool = False) -> None:
    """Run in the foreground until SIGTERM/SIGINT; raises AlreadyRunning or a ConsentryError at start, and
    HomeLost when the agent stopped by itself because its vault was removed or replaced."""
    layout.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = setup_logging(layout.log_dir, verbose)
    with InstanceLock(layout.agent_lock, wait_seconds=STOPPING_AGENT_WAIT_SECONDS):
        with Vault.open(layout) as vault:
            agent = Agent(layout, vault, policy_path, replay=replay)
            server = ControlServer(layout.control_socket, agent.requests, agent.wake)
            try:
                server.start()
            except OSError as exc:
                log.warning(
                    "control socket unavailable (%s); the CLI cannot reach this agent",
                    exc.strerror or type(exc).__name__,
                )
            page = start_employee_page(layout, policy_path)  # the employee's page; writes run/page.json
            previous = {
                sig: signal.signal(sig, lambda *_: agent.request_stop()) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                agent.run()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                stop_employee_page(layout, page)
                server.stop()
            if agent.stopped_because is not None:
                raise HomeLost(agent.stopped_because)
            logging.getLogger("consentry.agent").info("agent exited cleanly")
