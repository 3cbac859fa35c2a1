"""The consent ledger's hash chain and checkpoint bytes: what the vault writes and the store checks.

The chain starts from ``LEDGER_START_HASH`` (32 zero bytes) and each entry's body names its version::

    v2: digest_i = SHA-256(LEDGER_ENTRY_V2 || canonical_json(body_i))
        hash_i   = SHA-256(LEDGER_V2 || hash_{i-1} || digest_i)
    v1: hash_i   = SHA-256(LEDGER_V1 || hash_{i-1} || canonical_json(body_i))
    checkpoint bytes = CHECKPOINT_V1 || canonical_json({"v": 1, "seq", "head_hash", "device_kid", "at"})

(prefixes from ``protocol.domains``). How the vault keeps the ledger is in ``vault.ledger``'s docstring.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol import domains
from protocol.canonical import canonical_json

LEDGER_VERSION = 1  # of checkpoints (and of entries written before version 2)
ENTRY_VERSION = 2  # of every entry appended now
LEDGER_START_HASH = "0" * 64  # the "previous hash" of the ledger's first entry (and of seq 0)


def checkpoint_bytes(seq: int, head_hash: str, device_kid: str, at: str) -> bytes:
    body = {"v": LEDGER_VERSION, "seq": seq, "head_hash": head_hash, "device_kid": device_kid, "at": at}
    return domains.CHECKPOINT_V1 + canonical_json(body)


def entry_digest(body: dict[str, Any]) -> str:
    """A version-2 entry's digest: what the chain (and an extension proof) carries instead of the body."""
    return hashlib.sha256(domains.LEDGER_ENTRY_V2 + canonical_json(body)).hexdigest()


def link_hash(prev_hash: str, digest: str) -> str:
    """The version-2 chain step from the previous hash and an entry digest."""
    return hashlib.sha256(domains.LEDGER_V2 + bytes.fromhex(prev_hash) + bytes.fromhex(digest)).hexdigest()


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """The chain step for ``body``, by the version the body names (1 or 2)."""
    version = body.get("v")
    if version == 1:
        return hashlib.sha256(domains.LEDGER_V1 + bytes.fromhex(prev_hash) + canonical_json(body)).hexdigest()
    if version == 2:
        return link_hash(prev_hash, entry_digest(body))
    raise ValueError(f"unknown ledger entry version {version!r}")
