"""Who is at the other end of a loopback connection: a program of the serving user's own account, or not.

The local pages accept only connections whose peer socket belongs to the UID the page runs as. A
session secret (the link's token, the cookie, the CSRF token) can leak to another account of the
same computer (a browser sends a host's cookies to every port of it; a link can sit in a process
list or a Referer), but the kernel's record of who owns a socket cannot be borrowed: another local
user connecting with every secret still gets nothing.

Backends, one per OS, behind ``PeerOwners``; ``peer_owners()`` chooses one:
  linux   the peer socket's row in /proc/net/tcp or /proc/net/tcp6 (kit.web.peer_linux)
  others  none yet: ``PeerCheckUnavailable``, and the page does not start (fail closed; the
          ``consentry`` commands do everything the page does). macOS (libproc's socket info for
          our own processes) and Windows (GetExtendedTcpTable's owning process) can get one.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Protocol

from protocol.errors import ConsentryError

Address = tuple[str, int]


class PeerCheckUnavailable(ConsentryError):
    """This system gives no way to see which user owns the other end of a connection."""


class PeerOwners(Protocol):
    def owner_uid(self, peer: Address, local: Address) -> int | None:
        """The UID owning the live socket at ``peer`` connected to ``local``; None if none is found."""
        ...


def peer_owners(platform: str = sys.platform) -> PeerOwners:
    """The backend for ``platform``; ``PeerCheckUnavailable`` (a sentence for the employee) if there is none."""
    if platform.startswith("linux"):
        from kit.web.peer_linux import ProcNetTcp

        owners = ProcNetTcp()
        owners.check_readable()
        return owners
    raise PeerCheckUnavailable(
        "the local page cannot check which user of this computer connects to it on this system, so it does "
        "not start; the consentry commands do everything the page does"
    )


def same_user(connection: socket.socket, owners: PeerOwners, uid: int | None = None) -> bool:
    """True only if the peer of ``connection`` is a live socket of ``uid`` (default: this process's user)."""
    try:
        peer, local = connection.getpeername()[:2], connection.getsockname()[:2]
    except OSError:
        return False  # already gone: nothing to serve
    owner = owners.owner_uid((peer[0], int(peer[1])), (local[0], int(local[1])))
    return owner is not None and owner == (os.geteuid() if uid is None else uid)
