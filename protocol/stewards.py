"""The data stewards' keys and quorum, as IT's policy names them and the store and agents both check."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, Field, field_validator, model_validator

from protocol.modelconfig import BOUNDARY

_frozen = BOUNDARY


def b64_key(value: str, what: str, length: int = 32) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be standard base64") from None
    if len(raw) != length:
        raise ValueError(f"{what} must decode to {length} bytes, got {len(raw)}")
    return value


class StewardConfig(BaseModel):
    """The data stewards' Ed25519 public keys (base64, by name) and how many must approve a batch."""

    model_config = _frozen

    keys: dict[str, str] = Field(default_factory=dict)
    approvals_required: int = Field(default=1, ge=1, le=16)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            b64_key(key, f"stewards.keys.{name}")
        if len(set(value.values())) != len(value):
            raise ValueError("the same steward key is listed under two names")
        return value

    @model_validator(mode="after")
    def _enough_stewards(self) -> StewardConfig:
        if self.keys and self.approvals_required > len(self.keys):
            raise ValueError(
                f"approvals_required is {self.approvals_required} but only {len(self.keys)} steward keys are listed"
            )
        return self
