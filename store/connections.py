"""Bounds on connections, below the app: how many are open, and how long a request head may take.

uvicorn's HTTP/1.1 protocol (h11) waits for a request head forever, and accepts connections until the
process runs out of file descriptors; past that the event loop cannot accept even ``/v1/health``. The
protocol here adds two rules, each answered with a clear refusal in the store's JSON error shape, then
a close:

- a connection opened while ``max_connections`` are open gets ``503 too_many_connections`` (with
  ``Retry-After``) at once, so established connections keep working and a new one learns why;
- a request head (request line and headers) not complete ``header_timeout_seconds`` after the
  connection opened, or after the previous response on a kept-alive connection, gets
  ``408 head_too_slow``.

A third rule paces new connections (``store.admission``): at most ``new_connections_per_turn`` start
being read per event-loop turn, the rest wait unread in arrival order, so a flood of new connections
cannot make the turns that ``/v1/health`` and established connections need long. The head timeout of a
waiting connection starts when the store starts reading it.

Bodies are the gate's (``store.gate``): it sees whose request it is before any body is read.
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from store.admission import Admission

if TYPE_CHECKING:
    from store.settings import StoreSettings

RETRY_AFTER_SECONDS = 2
RESERVED_FILES = 64  # descriptors kept for the database, key files and logs, whatever the limit


def _refusal(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if status == 503:
        head.append(f"retry-after: {RETRY_AFTER_SECONDS}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def connection_cap(settings: StoreSettings) -> int:
    """``max_connections``, lowered to fit the process's open-files limit (each connection is a descriptor)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - RESERVED_FILES))


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (systemd gives services 1024); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # keep the lower limit; connection_cap fits under it
    return soft


def guarded_protocol(settings: StoreSettings) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the rules of the module docstring (pass as ``uvicorn.Config(http=...)``)."""
    cap = connection_cap(settings)
    admission = Admission(settings.new_connections_per_turn)
    head_timeout = settings.header_timeout_seconds
    too_many = _refusal(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"the store has {cap} connections open, its limit; retry shortly",
    )
    too_slow = _refusal(
        408, "Request Timeout", "head_too_slow", f"the request line and headers must arrive within {head_timeout:g} s"
    )

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > cap:
                transport.write(too_many)
                transport.close()
                return
            if admission.arrive(self.loop, self._start_reading):
                self._arm()
            else:
                transport.pause_reading()  # before asyncio adds its reader: nothing is read until its turn

        def _start_reading(self) -> bool:
            if self.transport.is_closing():
                return False
            self.transport.resume_reading()
            self._arm()
            return True

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the head is complete: the body's pace is the gate's

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request's head on this kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            self.transport.write(too_slow)
            self.transport.close()

    return GuardedH11Protocol
