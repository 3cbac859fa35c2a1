"""Server side of the control socket: a thread that hands each request to the agent's loop.

The socket is owner-only (0600, in the 0700 runtime folder). The agent's loop does the work, so its
state has one owner; this thread only parses, queues, waits and answers.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from agent.control_protocol import MAX_LINE, ControlRequest, ControlResponse

log = logging.getLogger("consentry.agent")

ANSWER_TIMEOUT = 10.0


@dataclass
class PendingRequest:
    request: ControlRequest
    done: threading.Event = field(default_factory=threading.Event)
    response: ControlResponse | None = None

    def answer(self, response: ControlResponse) -> None:
        self.response = response
        self.done.set()


class ControlServer:
    def __init__(self, path: Path, requests: queue.Queue[PendingRequest], wake: Callable[[], None]) -> None:
        self._path = path
        self._requests = requests
        self._wake = wake
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._path.parent, 0o700)
        self._path.unlink(missing_ok=True)  # stale: we hold the single-instance lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self._path))
        os.chmod(self._path, 0o600)
        sock.listen(8)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="consentry-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with conn:
                conn.settimeout(5.0)
                try:
                    conn.sendall(self._handle(conn).model_dump_json().encode() + b"\n")
                except OSError as exc:
                    log.debug("control: client went away (%s)", type(exc).__name__)

    def _handle(self, conn: socket.socket) -> ControlResponse:
        data = b""
        try:
            while not data.endswith(b"\n") and len(data) <= MAX_LINE:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return ControlResponse(ok=False, error="request not received")
        try:
            request = ControlRequest.model_validate_json(data)
        except ValidationError:
            return ControlResponse(ok=False, error="malformed request")
        pending = PendingRequest(request)
        self._requests.put(pending)
        self._wake()
        if not pending.done.wait(ANSWER_TIMEOUT) or pending.response is None:
            return ControlResponse(ok=False, error="the agent is busy; try again")
        return pending.response

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once; close() does not
            except OSError:
                pass  # not connected or already shut: close() is enough
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._path.unlink(missing_ok=True)
