"""Raw 32-byte private keys in 0600 files inside 0700 folders, refused when others could read them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from protocol.errors import InvalidRecord
from protocol.permissions import check_not_writable_by_others, check_private

_HEADER = "consentry-key-v1"


def write_key_file(path: Path, kind: str, private_bytes: bytes) -> None:
    """Create ``path`` (0600, parent 0700) holding ``kind`` and the key; never overwrites an existing key."""
    if len(private_bytes) != 32:
        raise ValueError(f"a private key is 32 bytes, got {len(private_bytes)}")
    if not kind.isidentifier():
        raise ValueError(f"key kind {kind!r} must be an identifier")
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    check_not_writable_by_others(path.parent)  # an existing folder is never changed, only checked
    text = f"{_HEADER} {kind} {base64.b64encode(private_bytes).decode('ascii')}\n"
    # O_EXCL: two processes starting at once must not each write a different key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_key_file(path: Path, kind: str) -> bytes:
    """Read a key written by ``write_key_file``; ``InsecurePermissions`` if group/others can access it."""
    check_not_writable_by_others(path.parent)
    check_private(path, is_dir=False)
    fields = path.read_text(encoding="ascii").split()
    if len(fields) != 3 or fields[0] != _HEADER or fields[1] != kind:
        raise InvalidRecord(f"{path} is not a Consentry {kind} key file")
    try:
        raw = base64.b64decode(fields[2], validate=True)
    except ValueError:
        raise InvalidRecord(f"{path} is not a Consentry {kind} key file") from None
    if len(raw) != 32:
        raise InvalidRecord(f"{path} is not a Consentry {kind} key file")
    return raw
