"""The signed ledger head file's signature, checked from its JSON alone (the vault writes it: vault.ledger_head).

``<home>/keys/ledger-head`` holds one JSON object, version 1, with exactly these nine keys::

    {"v": 1, "vault_id", "seq", "head_hash", "prev_seq", "prev_hash", "device_kid", "at", "signature"}

``prev_seq`` and ``prev_hash`` are ``null`` unless a commit is in flight, and are signed as ``null``.
``signature`` is the device key's Ed25519 signature, as 128 lowercase hex digits, over::

    b"consentry-ledger-head-v1\\0" || canonical_json(every key but "signature")
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol import domains
from protocol.canonical import canonical_json
from protocol.errors import InvalidRecord, UnsupportedVersion
from protocol.signing import verify_signature

HEAD_VERSION = 1
HEAD_FIELDS = frozenset({"v", "vault_id", "seq", "head_hash", "prev_seq", "prev_hash", "device_kid", "at", "signature"})


def ledger_head_message(head: Mapping[str, object]) -> bytes:
    """The bytes the device signs for ``head`` (the parsed head file)."""
    version = head.get("v")
    if version != HEAD_VERSION or isinstance(version, bool):
        if isinstance(version, int) and not isinstance(version, bool):
            raise UnsupportedVersion(f"ledger head version {version} is not supported (only {HEAD_VERSION})")
        raise ValueError(f"a ledger head's v must be the integer {HEAD_VERSION}")
    if set(head) != HEAD_FIELDS:
        raise ValueError("a version-1 ledger head has exactly the keys " + ", ".join(sorted(HEAD_FIELDS)))
    return domains.LEDGER_HEAD_V1 + canonical_json({k: v for k, v in head.items() if k != "signature"})


def verify_ledger_head(head: Mapping[str, object], device_public_key: bytes) -> None:
    """``InvalidRecord`` unless the device key signed ``head`` (the parsed JSON of the head file)."""
    message = ledger_head_message(head)
    signature = head["signature"]
    try:
        raw = bytes.fromhex(signature) if isinstance(signature, str) and len(signature) == 128 else b""
    except ValueError:
        raw = b""
    if not raw or signature != raw.hex():  # lowercase hex only, as written
        raise InvalidRecord()
    verify_signature(device_public_key, message, raw)
