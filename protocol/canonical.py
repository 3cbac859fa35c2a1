"""Canonical JSON (RFC 8785 / JCS) for every byte string that is hashed, signed or used as AAD."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` to RFC 8785 canonical JSON bytes.

    Floats are allowed (JCS defines their form); NaN and infinities are rejected by rfc8785.
    """
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
