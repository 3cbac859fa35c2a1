"""Client side of the agent's control socket: what the CLI calls to talk to a running agent.

Every function returns ``None``/``False`` when no agent is running (no socket, or nobody listening)
and raises ``ControlError`` when an agent is there but refuses or does not answer in time.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agent.control_protocol import MAX_LINE, ControlRequest, ControlResponse
from agent.errors import ControlError
from vault.paths import Layout


def _ask(layout: Layout, request: ControlRequest, timeout: float) -> ControlResponse | None:
    path = layout.control_socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # no agent running
        except OSError as exc:
            raise ControlError(f"cannot reach the agent ({exc.strerror or type(exc).__name__})") from None
        try:
            sock.sendall(request.model_dump_json().encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_LINE:
                    raise ControlError("the agent sent an oversized answer")
        except TimeoutError:
            raise ControlError(f"the agent did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"the agent connection failed ({exc.strerror or type(exc).__name__})") from None
    finally:
        sock.close()
    try:
        response = ControlResponse.model_validate_json(data)
    except ValidationError:
        raise ControlError("the agent sent a malformed answer") from None
    if not response.ok:
        raise ControlError(response.error or "the agent refused the request")
    return response


def notify_consent_changed(layout: Layout, timeout: float = 5.0) -> bool:
    """Tell a running agent the ledger changed. True once it has re-read the ledger, stopped every
    source no longer permitted and dropped every unwritten event and window of a revoked category;
    False when no agent is running."""
    return _ask(layout, ControlRequest(op="consent-changed"), timeout) is not None


def query_status(layout: Layout, timeout: float = 5.0) -> dict[str, Any] | None:
    """The running agent's status (the AgentStatus fields as JSON values), or None if none runs."""
    response = _ask(layout, ControlRequest(op="status"), timeout)
    return None if response is None else response.status


def request_pause(layout: Layout, until: datetime | None, timeout: float = 5.0) -> bool:
    """Have the running agent record a pause in the ledger and stop capture; False if none runs."""
    return _ask(layout, ControlRequest(op="pause", until=until), timeout) is not None


def request_resume(layout: Layout, timeout: float = 5.0) -> bool:
    """Have the running agent record a resume in the ledger; False if none runs."""
    return _ask(layout, ControlRequest(op="resume"), timeout) is not None
