"""The one versioned format of every private key Consentry keeps in a file: the vault's KEK, the store's
keys (sealing, log signing, records KEK) and stewards' signing keys.

Version 1, one ASCII line::

    consentry-key-v1 <kind> <base64 of the 32 key bytes>\\n

``kind`` says what the key is for: ``aes256`` (a key-encryption key), ``ed25519`` (a signing key) or
``x25519`` (the store's sealing key); a key is only read as the kind it was written as. A line naming
another version (``consentry-key-v2 ...``) is refused with ``UnsupportedVersion`` before anything else.

Version 0 is what the vault's KEK file held before this format: the bare base64 of the key. It is
still read where a caller allows it (``legacy=True``, the KEK store), and never written; a KEK file is
rewritten in version 1 the next time the KEK is replaced (``consentry erase --all``).

Files are 0600 inside a folder others cannot write; a damaged or wrong-kind file is ``KeyUnavailable``
(the message names the kind, never the path or the bytes).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from protocol.errors import KeyUnavailable, UnsupportedVersion
from protocol.permissions import check_not_writable_by_others, check_private

KEY_FILE_VERSION = 1
KEY_BYTES = 32
KINDS = ("aes256", "ed25519", "x25519")
_MAGIC = "consentry-key-v"
_VERSION = re.compile(r"^consentry-key-v([0-9]{1,6})$")


def encode_key(kind: str, key: bytes) -> str:
    """The version-1 line for ``key`` of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"key kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes")
    return f"{_MAGIC}{KEY_FILE_VERSION} {kind} {base64.b64encode(key).decode('ascii')}\n"


def decode_key(text: str, kind: str, *, legacy: bool = False) -> bytes:
    """The key in ``text`` (a key file's content), which must be of ``kind``.

    ``legacy``: also accept version 0 (bare base64), the KEK file's format before version 1.
    """
    if kind not in KINDS:
        raise ValueError(f"key kind must be one of {', '.join(KINDS)}, not {kind!r}")
    fields = text.split()
    if fields and fields[0].startswith(_MAGIC):
        match = _VERSION.match(fields[0])
        if match is not None and int(match.group(1)) != KEY_FILE_VERSION:
            raise UnsupportedVersion(f"this {kind} key file was written by a newer Consentry")
        if match is None or len(fields) != 3 or fields[1] != kind:
            raise _damaged(kind)
        encoded = fields[2]
    elif legacy and len(fields) == 1:
        encoded = fields[0]
    else:
        raise _damaged(kind)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise _damaged(kind) from None
    if len(key) != KEY_BYTES:
        raise _damaged(kind)
    return key


def _damaged(kind: str) -> KeyUnavailable:
    return KeyUnavailable(f"the {kind} key file is damaged, or holds another kind of key")


def write_key_file(path: Path, kind: str, key: bytes) -> None:
    """Create ``path`` (0600, parent 0700 if new) holding ``key``; never overwrites an existing key file."""
    text = encode_key(kind, key)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    check_not_writable_by_others(path.parent)  # an existing folder is never changed, only checked
    # O_EXCL: two processes starting at once must not each write a different key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_key_file(path: Path, kind: str, *, legacy: bool = False) -> bytes:
    """Read a key file; ``InsecurePermissions`` if others can read it or swap it, ``KeyUnavailable`` if damaged."""
    check_not_writable_by_others(path.parent)
    check_private(path, is_dir=False)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise _damaged(kind) from None
    return decode_key(text, kind, legacy=legacy)
