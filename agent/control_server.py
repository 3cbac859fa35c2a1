"""Server side of the control socket: accept, read one request per connection, hand it to the agent's loop.

The socket is owner-only (0600, in the 0700 runtime folder). The agent's loop does the work, so its
state has one owner; the threads here only read, parse, queue, wait and answer.

Each connection gets its own short-lived thread, so a client that trickles its request (or never
finishes it) delays nobody else: it has ``READ_DEADLINE`` seconds in all to send its line, and at most
``MAX_CLIENTS`` connections are served at once (more are refused at once, with a sentence). A request
that does not parse is answered with the reason at once, before anything reaches the agent's loop.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from agent.control_protocol import MAX_LINE, ControlRequest, ControlResponse

log = logging.getLogger("consentry.agent")

ANSWER_TIMEOUT = 10.0  # the agent's loop had this long to answer a parsed request
READ_DEADLINE = 3.0  # a client has this long, in all, to send its request line
MAX_CLIENTS = 16  # connections served at once; the clients are the employee's own CLI, tray and page


@dataclass
class PendingRequest:
    request: ControlRequest
    done: threading.Event = field(default_factory=threading.Event)
    response: ControlResponse | None = None

    def answer(self, response: ControlResponse) -> None:
        self.response = response
        self.done.set()


class RequestNotReceived(Exception):
    """The client did not send a complete request line in time, or sent too much."""


def read_request_line(conn: socket.socket, deadline: float) -> bytes:
    """Bytes up to and including the first newline, within ``deadline`` (monotonic) and ``MAX_LINE``."""
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestNotReceived(f"the request did not arrive within {READ_DEADLINE:g} s")
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            raise RequestNotReceived(f"the request did not arrive within {READ_DEADLINE:g} s") from None
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_LINE:
            raise RequestNotReceived(f"the request is longer than {MAX_LINE} bytes")
    return data


def parse_request(data: bytes) -> ControlRequest | str:
    """The request, or why it is refused (in words a person can act on)."""
    try:
        return ControlRequest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "request"
        return f"malformed request ({where}: {first.get('msg', 'invalid')})"


class ControlServer:
    def __init__(self, path: Path, requests: queue.Queue[PendingRequest], wake: Callable[[], None]) -> None:
        self._path = path
        self._requests = requests
        self._wake = wake
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._path.parent, 0o700)
        self._path.unlink(missing_ok=True)  # stale: we hold the single-instance lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self._path))
        os.chmod(self._path, 0o600)
        sock.listen(MAX_CLIENTS)
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
            if not self._slots.acquire(blocking=False):
                self._refuse(conn)
                continue
            threading.Thread(target=self._serve_one, args=(conn,), name="consentry-control-client", daemon=True).start()

    def _refuse(self, conn: socket.socket) -> None:
        # Never read from it: answering at once is what keeps the accept loop free.
        with conn:
            conn.settimeout(0.5)
            busy = ControlResponse(ok=False, error="the agent is serving too many requests; try again")
            try:
                conn.sendall(busy.model_dump_json().encode() + b"\n")
            except OSError:
                pass

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn:
                response = self._handle(conn)
                conn.settimeout(READ_DEADLINE)
                try:
                    conn.sendall(response.model_dump_json().encode() + b"\n")
                except OSError as exc:
                    log.debug("control: client went away (%s)", type(exc).__name__)
        finally:
            self._slots.release()

    def _handle(self, conn: socket.socket) -> ControlResponse:
        try:
            data = read_request_line(conn, time.monotonic() + READ_DEADLINE)
        except RequestNotReceived as exc:
            return ControlResponse(ok=False, error=str(exc))
        except OSError:
            return ControlResponse(ok=False, error="request not received")
        request = parse_request(data)
        if isinstance(request, str):
            return ControlResponse(ok=False, error=request)
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
