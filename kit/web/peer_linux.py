"""Linux: the owner of a TCP connection's other end, from /proc/net/tcp and /proc/net/tcp6.

Each row is one socket of this network namespace: ``sl local rem st ... uid timeout inode``, the
addresses in hex as the kernel holds them (each 32-bit word in host byte order, then ``:PORT``).
The peer's row is the one whose local address is our peer and whose remote address is us; its uid
is the user that created the socket. Rows with inode 0 are not owned by any process any more (a
closed socket in TIME_WAIT or an orphan, which the kernel lists as uid 0): never a match, so a peer
that hangs up before it is checked is refused, even when the page runs as root.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

Address = tuple[str, int]
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def proc_hex(host: str, port: int) -> tuple[str, str]:
    """``host:port`` as /proc/net/tcp (IPv4) and /proc/net/tcp6 (IPv4-mapped or IPv6) spell it."""
    ip = ipaddress.ip_address(host)
    v6 = ip if ip.version == 6 else ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    words6 = "".join(f"{word:08X}" for word in struct.unpack("=4I", v6.packed))
    v4 = ip if ip.version == 4 else v6.ipv4_mapped
    words4 = f"{struct.unpack('=I', v4.packed)[0]:08X}" if v4 is not None else ""
    return f"{words4}:{port:04X}", f"{words6}:{port:04X}"


class ProcNetTcp:
    """``PeerOwners`` read from /proc (``tables`` is injectable for a test with another /proc)."""

    def __init__(self, tables: tuple[Path, ...] = TABLES) -> None:
        self.tables = tables

    def check_readable(self) -> None:
        """``PeerCheckUnavailable`` when no table can be read (no /proc here): say so once, at start."""
        from kit.web.peer import PeerCheckUnavailable

        for table in self.tables:
            try:
                with table.open("rb"):
                    return
            except OSError:
                continue
        raise PeerCheckUnavailable(
            "the local page cannot read /proc/net/tcp to check which user of this computer connects to it, so it "
            "does not start; the consentry commands do everything the page does"
        )

    def owner_uid(self, peer: Address, local: Address) -> int | None:
        peer4, peer6 = proc_hex(*peer)
        local4, local6 = proc_hex(*local)
        owners: set[int] = set()
        for table in self.tables:
            try:
                text = table.read_bytes()
            except OSError:
                continue  # no IPv6 here, say; a table we cannot read matches nothing (refused)
            for pair in ((peer4, local4), (peer6, local6)):
                owners |= _live_owners(text, pair)
        # Exactly one live socket is that connection's other end; anything else is refused.
        return owners.pop() if len(owners) == 1 else None


def _live_owners(text: bytes, pair: tuple[str, str]) -> set[int]:
    """The uids of rows with this (local, remote) pair and a live inode.

    A substring search over the whole table, then only matching lines are split: the tables hold a
    row per socket on the machine, and this runs for every connection to a page.
    """
    needle = f" {pair[0]} {pair[1]} ".encode()
    found: set[int] = set()
    at = text.find(needle)
    while at >= 0:
        start = text.rfind(b"\n", 0, at) + 1
        end = text.find(b"\n", at)
        fields = text[start : end if end >= 0 else len(text)].split()
        if len(fields) >= 10 and (fields[1].decode(), fields[2].decode()) == pair and fields[9] != b"0":
            found.add(int(fields[7]))
        at = text.find(needle, at + 1)
    return found
