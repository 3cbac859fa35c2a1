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
    # Senders the store cannot authenticate before their body arrives (docs/store.md, "Hostile senders").
    body_min_bytes_per_second: int = Field(
        default=64 * 1024, ge=1, description="a body must arrive at least this fast (after body_grace_seconds)"
    )
    body_grace_seconds: float = Field(default=5.0, gt=0, le=300, description="before the minimum rate applies")
    body_deadline_seconds: float = Field(default=120.0, gt=0, le=3600, description="no body takes longer")
    unverified_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="body bytes held at once before their signatures are checked (default: max_body_bytes + 8 MiB)",
    )
    max_requests_per_key: int = Field(default=4, ge=1, le=1000, description="requests in progress per signing key")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="a request head (line and headers) must be complete within this"
    )
    max_connections: int = Field(
        default=500, ge=1, le=100_000, description="open connections; more are answered 503 and closed"
    )
    new_connections_per_turn: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="new connections the store starts reading per event-loop turn; more wait unread, in order",
    )
    clock_skew_seconds: int = Field(default=300, ge=5, le=3600, description="signed-request timestamp window")
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    queue_limit: int = Field(default=500, ge=1, le=10_000)
    key_purge_retry_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="after an erasure, how often to retry rewriting the key table while a backup holds its old rows",
    )
    api_docs: bool = Field(default=False, description="serve /docs, /redoc and /openapi.json (off: they map the API)")

    @property
    def unverified_budget(self) -> int:
        """``unverified_body_bytes``, never below one body of the largest size (it could never be read)."""
        floor = self.max_body_bytes + 8 * 1024 * 1024
        return floor if self.unverified_body_bytes is None else max(self.unverified_body_bytes, self.max_body_bytes)


class StoreClock(Protocol):
    def now(self) -> int: ...


class SystemClock:
    def now(self) -> int:
        return int(time.time())
