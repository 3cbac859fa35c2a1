"""The data stewards' keys and quorum, as IT's policy names them and the store and agents both check."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import ClassVar


def b64_key(value: str, what: str, length: int = 32) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be standard base64") from None
    if len(raw) != length:
        raise ValueError(f"{what} must decode to {length} bytes, got {len(raw)}")
    return value


@dataclass(frozen=True)
class StewardConfig:
    """The data stewards' Ed25519 public keys (base64, by name) and how many must approve a batch.

    A plain frozen dataclass (pydantic validates it inside a policy or the store's settings); its rules
    live in ``__post_init__`` so every way of building one checks them.
    """

    __pydantic_config__: ClassVar = {"extra": "forbid"}

    keys: dict[str, str] = field(default_factory=dict)
    approvals_required: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.approvals_required <= 16:
            raise ValueError(
                f"stewards.approvals_required must be greater than or equal to 1 and at most 16, "
                f"got {self.approvals_required}"
            )
        for name, key in self.keys.items():
            b64_key(key, f"stewards.keys.{name}")
        if len(set(self.keys.values())) != len(self.keys):
            raise ValueError("the same steward key is listed under two names")
        if self.keys and self.approvals_required > len(self.keys):
            raise ValueError(
                f"approvals_required is {self.approvals_required} but only {len(self.keys)} steward keys are listed"
            )
