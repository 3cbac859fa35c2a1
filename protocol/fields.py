"""Field types and the versioned base model shared by every release wire format."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from protocol.errors import UnsupportedVersion
from protocol.modelconfig import WIRE
from protocol.timeutil import EPOCH_SECONDS

FROZEN = WIRE

BatchId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex digits (a uuid4 hex)")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, 64 lowercase hex digits")]
KeyId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="a key id, e.g. protocol.key_id(public key)"),
]
Subject = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="the subject pseudonym (random, rotated per period)"),
]
Nonce = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="16 random bytes as hex")]
# The mark lets machine output name these moments as UTC ISO text (protocol.timeutil.json_with_utc_times).
EpochSeconds = Annotated[int, Field(ge=0, le=2**40, description="UTC seconds since the epoch"), EPOCH_SECONDS]


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str) -> bytes:
    """Strict standard base64; a ValueError (not binascii.Error) for anything else."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not standard base64") from None


def _check_b64(value: Any) -> Any:
    if isinstance(value, str):
        b64decode(value)
    return value


def _check_b64_32(value: Any) -> Any:
    if isinstance(value, str) and len(b64decode(value)) != 32:
        raise ValueError("must be 32 bytes, base64")
    return value


def _check_b64_64(value: Any) -> Any:
    if isinstance(value, str) and len(b64decode(value)) != 64:
        raise ValueError("must be a 64-byte Ed25519 signature, base64")
    return value


# The patterns put in the published schema exactly what the validators accept (padded standard base64
# whose length decodes to the stated size), so a schema-valid request is never refused for its shape.
_B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# (Field before the validator: pydantic then keeps the constraints in the schema it publishes.)
Base64 = Annotated[str, Field(pattern=_B64_PATTERN, description="standard base64"), BeforeValidator(_check_b64)]
PublicKey32 = Annotated[
    str,
    Field(min_length=44, max_length=44, pattern=r"^[A-Za-z0-9+/]{43}=$", description="32-byte key, base64"),
    BeforeValidator(_check_b64_32),
]
Signature64 = Annotated[
    str,
    Field(min_length=88, max_length=88, pattern=r"^[A-Za-z0-9+/]{86}==$", description="Ed25519 signature, base64"),
    BeforeValidator(_check_b64_64),
]


class Versioned(BaseModel):
    """A frozen wire model whose ``v`` is checked before any other field.

    An unknown version raises ``UnsupportedVersion`` (not a validation error), so a newer writer is never
    half-parsed; pydantic lets non-ValueError exceptions through unchanged.
    """

    model_config = FROZEN
    VERSION: ClassVar[int] = 1

    # Literal, so the published schema says exactly what is accepted (a new version adds a new model).
    v: Literal[1] = Field(description="format version")

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("v")
            if version != cls.VERSION or isinstance(version, bool):  # True == 1 in Python, not in the schema
                if isinstance(version, int) and not isinstance(version, bool):
                    raise UnsupportedVersion(f"{cls.__name__} version {version} is not supported (only {cls.VERSION})")
                raise ValueError(f"v must be the integer {cls.VERSION}")
        return data

    def canonical_dict(self) -> dict[str, Any]:
        """The JSON form that canonical_json hashes and signs."""
        return self.model_dump(mode="json")
