"""The batch payload: the window records of one batch, as the bytes that get sealed.

Layout (version 1) is canonical JSON (RFC 8785) of::

    {"v": 1, "batch_id": "<32 hex>", "records": [<window record>, ...]}

``v`` is read and checked before anything else; the writer emits canonical bytes, and the
manifest's ``payload_sha256`` pins them; records are validated with ``protocol.windows.parse_window``
only by the privacy checks (``protocol.privacy``), which need the raw dicts to judge them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from protocol.canonical import canonical_json, sha256_hex
from protocol.errors import UnsupportedVersion
from protocol.windows import AnyWindow, window_to_json_dict

PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class DecodedPayload:
    batch_id: str
    records: tuple[dict[str, Any], ...]


def encode_payload(batch_id: str, records: Sequence[AnyWindow]) -> bytes:
    """The canonical payload bytes for ``records``; hash them with ``payload_digest``."""
    if not records:
        raise ValueError("a batch needs at least one record")
    return canonical_json(
        {"v": PAYLOAD_VERSION, "batch_id": batch_id, "records": [window_to_json_dict(r) for r in records]}
    )


def payload_digest(payload: bytes) -> str:
    return sha256_hex(payload)


def decode_payload(payload: bytes) -> DecodedPayload:
    """Parse payload bytes into raw record dicts; ``ValueError`` for anything that is not a v1 payload."""
    try:
        # pydantic-core's parser: about twice as fast as json.loads on a large payload; no NaN/Infinity.
        data = from_json(payload, allow_inf_nan=False)
    except ValueError:
        raise ValueError("payload is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")  # noqa: TRY004 -- bad input, not caller misuse
    version = data.get("v")
    if version != PAYLOAD_VERSION:
        if isinstance(version, int) and not isinstance(version, bool):
            raise UnsupportedVersion(f"payload version {version} is not supported (only {PAYLOAD_VERSION})")
        raise ValueError("payload has no valid version")
    if set(data) != {"v", "batch_id", "records"}:
        raise ValueError("payload has unexpected or missing top-level keys")
    batch_id, records = data["batch_id"], data["records"]
    if not isinstance(batch_id, str) or not isinstance(records, list) or not records:
        raise ValueError("payload batch_id must be a string and records a non-empty list")
    if not all(isinstance(r, dict) for r in records):
        raise ValueError("every payload record must be a JSON object")
    # Canonical form is not re-checked here: the manifest's SHA-256 already pins these exact bytes.
    return DecodedPayload(batch_id=batch_id, records=tuple(records))
