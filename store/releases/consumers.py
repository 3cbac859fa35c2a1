"""The store's release policy: the data consumers' keys, the k floor, retention and the release card's contact.

It is a file of its own (``DATA/release-policy.toml`` by default), not a section of the machine policy:
the machine policy is hashed into every employee's consent receipt and sent to every workstation, and
who may request releases is the store's business alone. Example::

    k_min = 5                   # distinct subjects every released category needs (refused below)
    retention_days = 30         # a record older than this (its window's end) is never released
    erasure_grace_hours = 72    # older snapshots holding an erased subject are removed within this
    licence = "internal use only"
    contact = "dpo@example.org"

    [consumers.keys]            # Ed25519 public keys (base64), by name; `consentry dataset keygen` prints one
    ml-team = "BASE64..."

    [warehouse]                 # optional: the release table's files in an S3-compatible bucket
    url = "s3://consentry-releases/prod"          # (store.releases.warehouse; default: DATA/data/releases/)
    endpoint = "https://minio.internal:9000"
    region = "us-east-1"
    credentials_file = "/etc/consentry/s3.ini"    # 0600; else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from protocol.fields import FROZEN
from protocol.stewards import b64_key
from store.releases.warehouse import WarehouseConfig

POLICY_FILE_NAME = "release-policy.toml"


class ReleasePolicyError(ValueError):
    """The release policy file is missing, not TOML, or breaks a rule (the message says which)."""


class ConsumerConfig(BaseModel):
    model_config = FROZEN

    keys: dict[str, str] = Field(default_factory=dict, description="consumer name -> Ed25519 public key (base64)")

    @field_validator("keys")
    @classmethod
    def _keys_are_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for name, key in keys.items():
            b64_key(key, f"consumers.keys.{name}")
        if len(set(keys.values())) != len(keys):
            raise ValueError("the same consumer key is listed under two names")
        return keys

    def name_of(self, public_key_b64: str) -> str | None:
        return next((name for name, key in self.keys.items() if key == public_key_b64), None)


class ReleasePolicy(BaseModel):
    model_config = FROZEN

    k_min: int = Field(default=5, ge=1, le=10_000, description="distinct subjects needed in every released category")
    # A one-person demo cannot reach k = 2: it may go lower only when it says so, as hold_hours does.
    allow_small_k_for_demo: bool = False
    retention_days: int = Field(default=30, ge=1, le=3650, description="records older than this are not released")
    erasure_grace_hours: float = Field(default=72.0, ge=0, le=24 * 90)
    licence: str = Field(default="internal use only; no redistribution", max_length=200)
    contact: str = Field(default="the data protection officer", max_length=200)
    consumers: ConsumerConfig = Field(default_factory=ConsumerConfig)
    warehouse: WarehouseConfig | None = Field(
        default=None, description="an S3-compatible bucket for the release table (default: the local folder)"
    )

    @model_validator(mode="after")
    def _k_floor(self) -> ReleasePolicy:
        if self.k_min < 2 and not self.allow_small_k_for_demo:
            raise ValueError(
                f"k_min is {self.k_min} but releases need at least 2 distinct subjects per category "
                "(allow_small_k_for_demo = true is for a one-person demo only, never in production)"
            )
        return self


def load_release_policy(path: Path) -> ReleasePolicy:
    """Read and check ``path``; ``ReleasePolicyError`` names the file, the key and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleasePolicyError(
            f"{path} does not exist. Write it with a [consumers.keys] table naming each data consumer's key "
            "(see docs/release.md, 'Data consumer')."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ReleasePolicyError(f"{path}: not valid TOML: {exc}") from None
    try:
        return ReleasePolicy.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ReleasePolicyError("invalid release policy:\n  " + "\n  ".join(problems)) from None
