"""The store's configuration and its clock, both injected into the service (no globals, no test modes)."""

from __future__ import annotations

import time
from typing import Protocol

from pydantic import BaseModel, Field

from protocol.fields import FROZEN
from protocol.stewards import StewardConfig


class StoreSettings(BaseModel):
    """What the store operator decides: the stewards whose approvals count, and request limits."""

    model_config = FROZEN

    stewards: StewardConfig
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="largest upload; larger requests get 413"
    )
    large_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="a body above this size needs one of max_large_bodies slots (memory bound)",
    )
    max_large_bodies: int = Field(
        default=2, ge=1, le=64, description="large bodies read at once; more get 503 with Retry-After"
    )
    clock_skew_seconds: int = Field(default=300, ge=5, le=3600, description="signed-request timestamp window")
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    queue_limit: int = Field(default=500, ge=1, le=10_000)
    api_docs: bool = Field(default=False, description="serve /docs, /redoc and /openapi.json (off: they map the API)")


class StoreClock(Protocol):
    def now(self) -> int: ...


class SystemClock:
    def now(self) -> int:
        return int(time.time())
